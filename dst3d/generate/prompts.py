"""Text prompts for the diffusion model: one prompt set per (split, category), a prompt for each of its images.

Backends (``prompts.backend``):

``template`` (offline). Each image's prompt is ``template.format(class=subject)``, where the subject is
``"[<color> ]<class>[, <keyword>, ...]"``:

* ``<class>``: the category with underscores as spaces;
* ``<color>`` (when ``colors``): one of ``COLORS``, drawn per image: P3D-Diffusion's "[color] [category]";
* the keywords (when ``use_keywords``): the CAD tags of the image's model, cleaned by ``clean_keywords``.

The default template gives "An image of red car, sedan, coupe, best quality, extremely detailed"; with
``colors`` and ``use_keywords`` off it is 3D-DST's published prompt "An image of car, best quality, extremely
detailed".

``openai``. One chat completion per prompt set, through the official ``openai`` client, against any
OpenAI-compatible endpoint: the LLM completes the keyword prompt ``"<class>, <keyword>, ..."`` (the category's
``max_keywords`` most frequent CAD tags) into ``prompts_per_category`` scene descriptions, as 3D-DST did, and
each image gets one of them, verbatim (``template`` and ``colors`` do not apply). The answer must be a JSON
array of strings (possibly in a code fence, or an object holding one such array) or one description per line
(list markers are removed); it must hold exactly ``prompts_per_category`` distinct, non-empty descriptions of
at most ``max_prompt_chars`` characters, or the job fails.

Determinism: everything drawn for an image (colour, description) comes from
``identity.image_rng(global_seed, split, category, image_index, "prompt")``, never from the order or the
subset of the images passed in.

Caching: an answer is stored as ``<cache_dir>/<request_hash>.json``, where ``request_hash`` is the SHA-256 of
the canonical JSON of the full request (endpoint URL, model, temperature, messages). A request whose answer is
cached is not sent again and needs no API key, so reruns, resumed runs and other users of the same cache make
no calls; two jobs asking the same question at once take turns on a lock file (``<cache_dir>.locks/``), so only
the first asks. Only answers that pass validation are cached.

Failures raise ``PromptError``. The official client retries timeouts, connection errors and HTTP 408, 409, 429
and 5xx itself, ``max_retries`` times, with exponential backoff and jitter (from 0.5 s, doubling, at most 8 s,
in openai 3.57) or the wait a ``Retry-After`` header asks for; its retries are logged at INFO by the ``openai`` logger.
Other HTTP errors fail at once; the job never falls back to templates. A missing API key fails before any
request is sent. The key is only given to the client: it is redacted from every message and never written to
the prompt file or the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from dst3d.identity import image_rng
from dst3d.io import write_json

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "An image of {class}, best quality, extremely detailed"

#: 24 colours for P3D-Diffusion's "[color] [category]" sampling (its list is unpublished): the 11 basic colour
#: terms of English (Berlin and Kay) and 13 common names of paints and finishes of vehicles and furniture, all
#: of them words that text encoders know well.
COLORS = (
    "black",
    "white",
    "gray",
    "red",
    "green",
    "yellow",
    "blue",
    "brown",
    "orange",
    "pink",
    "purple",
    "silver",
    "gold",
    "beige",
    "cream",
    "maroon",
    "burgundy",
    "navy blue",
    "sky blue",
    "teal",
    "turquoise",
    "olive green",
    "dark green",
    "lavender",
)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: The published prompt forms as ``prompts.preset`` values: each sets template, colours and keywords (keys given
#: in the config still win). ``3d-dst``: the 3D-DST paper and code (``"An image of {class}, best quality, extremely
#: detailed"``); ``p3d-diffusion``: P3D-Diffusion's code (``"{class}, best quality, extremely detailed"``,
#: ``ControlNet/run_canny.py``); ``p3d-diffusion-paper``: its paper's "[color] [category]" form on that string.
PROMPT_PRESETS: dict[str, dict] = {
    "3d-dst": {"template": DEFAULT_TEMPLATE, "colors": False, "use_keywords": False},
    "p3d-diffusion": {"template": "{class}, best quality, extremely detailed", "colors": False, "use_keywords": False},
    "p3d-diffusion-paper": {
        "template": "{class}, best quality, extremely detailed",
        "colors": True,
        "use_keywords": False,
    },
}

#: What ``prompts.preset: null`` sets: dst3d's own form, a coloured class with its model's keywords. The schema
#: gives these three keys no default, as the preset decides them; every other default is in config/schema.yaml.
DEFAULT_FORM: dict = {"template": DEFAULT_TEMPLATE, "colors": True, "use_keywords": True}

SYSTEM_MESSAGE = "You write prompts for a text-to-image diffusion model that generates realistic photographs."

USER_MESSAGE = (
    'Keyword prompt: "{keyword_prompt}".\n'
    "Complete the keyword prompt into {count} different descriptions of a realistic photograph of one "
    "{class_name}. Each description is a single sentence of at most {max_chars} characters that mentions the "
    "{class_name}, keeps it the main subject and varies the scene: place, surroundings, time of day, weather "
    'and lighting (for example "A photo of a taxicab speeding down a winding mountain road").\n'
    "Answer with a JSON array of {count} strings and nothing else."
)

_LIST_MARKER = re.compile(r"^(?:\d+[.):]|[-*\u2022])\s+")
_CODE_FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*?)\n?```$", re.DOTALL)


class PromptError(RuntimeError):
    """A prompt set cannot be built; the message says which config key or variable to change."""


def resolve_prompt_settings(settings: Mapping | None) -> dict:
    """The ``prompts:`` config block completed and checked: ``template``, ``colors`` and ``use_keywords`` from the
    preset where the block does not give them, every other key from config/schema.yaml's defaults (a ``None``
    value counts as absent); raises ``PromptError`` naming the offending ``prompts.*`` key."""
    from dst3d.config_schema import block_schema, block_settings

    given = {key: value for key, value in (settings or {}).items() if value is not None}
    if isinstance(given.get("openai"), Mapping):
        given["openai"] = {key: value for key, value in given["openai"].items() if value is not None}
    try:
        filled = block_settings("prompts", given)
    except ValueError as error:
        raise PromptError(str(error)) from None
    preset = filled["preset"]
    filled = {**(DEFAULT_FORM if preset is None else PROMPT_PRESETS[preset]), **filled}
    _check_template(filled["template"])
    # In the schema's order, whatever order the config gave: the rule's params compare as text.
    schema = block_schema("prompts")["properties"]
    resolved = {key: filled[key] for key in schema}
    resolved["openai"] = {key: filled["openai"][key] for key in schema["openai"]["properties"]}
    return resolved


def job_settings(settings: Mapping | None) -> dict:
    """The write_prompts rule's params: the resolved block with only the keys its backend reads, less the openai
    keys that say how requests are sent (``dst3d.workflow_config.PROMPT_RUNTIME_KEYS``, which the answer cache
    ignores too). The template backend ignores ``openai``; the openai backend ``template``, ``use_keywords`` and
    ``colors``."""
    from dst3d.workflow_config import PROMPT_RUNTIME_KEYS

    resolved = resolve_prompt_settings(settings)
    del resolved["preset"]  # what it sets is in template, colors and use_keywords
    if resolved["backend"] == "template":
        del resolved["openai"]
    else:
        for key in ("template", "use_keywords", "colors"):
            del resolved[key]
        resolved["openai"] = {key: value for key, value in resolved["openai"].items() if key not in PROMPT_RUNTIME_KEYS}
    return resolved


def _check_template(template: object) -> None:
    if not isinstance(template, str):
        raise PromptError(f"prompts.template must be a string, got {template!r}")
    try:
        field_names = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        raise PromptError(f"prompts.template {template!r} is not a valid format string: {error}") from None
    if field_names != {"class"}:
        raise PromptError(
            f"prompts.template must contain the field {{class}} and no other, got fields {sorted(field_names)} "
            f"in {template!r}"
        )


def clean_keywords(keywords: Sequence[str], class_name: str, limit: int) -> list[str]:
    """The first ``limit`` CAD keywords, stripped, with empty ones, repeats (case-insensitive) and the class
    name itself removed, in their given order."""
    if isinstance(keywords, str):
        raise TypeError(f"keywords must be a sequence of strings, not the string {keywords!r}")
    seen = {class_name.casefold()}
    cleaned = []
    for keyword in keywords:
        keyword = " ".join(keyword.replace("_", " ").split())
        if keyword and keyword.casefold() not in seen:
            seen.add(keyword.casefold())
            cleaned.append(keyword)
    return cleaned[:limit]


def template_prompt(template: str, class_name: str, color: str | None, keywords: Sequence[str]) -> str:
    """``template`` with ``{class}`` replaced by ``"[color ]class[, keyword, ...]"``."""
    subject = ", ".join([f"{color} {class_name}" if color else class_name, *keywords])
    return template.format(**{"class": subject})


def category_keywords(images: Sequence[tuple[str, int, Sequence[str]]], class_name: str, limit: int) -> list[str]:
    """The ``limit`` cleaned keywords that most images of the category carry (ties alphabetical)."""
    counts = Counter(
        keyword for _, _, keywords in images for keyword in clean_keywords(keywords, class_name, len(keywords))
    )
    return [keyword for keyword, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def llm_request(class_name: str, keywords: Sequence[str], openai_settings: Mapping) -> dict:
    """The full chat-completion request of one prompt set: endpoint URL, model, temperature and messages."""
    user_message = USER_MESSAGE.format(
        keyword_prompt=", ".join([class_name, *keywords]),
        count=openai_settings["prompts_per_category"],
        class_name=class_name,
        max_chars=openai_settings["max_prompt_chars"],
    )
    return {
        "base_url": openai_settings["base_url"] or OPENAI_DEFAULT_BASE_URL,
        "model": openai_settings["model"],
        "temperature": openai_settings["temperature"],
        "messages": [
            {"role": "system", "content": SYSTEM_MESSAGE},
            {"role": "user", "content": user_message},
        ],
    }


def request_hash(request: Mapping) -> str:
    """SHA-256 (hex) of the canonical JSON of ``request``: the cache key."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_descriptions(content: str | None, count: int, max_chars: int) -> list[str]:
    """The descriptions in an LLM answer (see the module docstring for the accepted forms); raises
    ``PromptError`` saying what is wrong with it."""
    text = (content or "").strip()
    if not text:
        raise PromptError("the LLM answer is empty")
    fenced = _CODE_FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if text[0] in "[{":
        descriptions = [description.strip() for description in _json_descriptions(text)]
    else:
        lines = (_LIST_MARKER.sub("", line.strip()).strip().strip('"').strip() for line in text.splitlines())
        descriptions = [line for line in lines if line]
    if len(descriptions) != count:
        raise PromptError(
            f"the LLM answer holds {len(descriptions)} descriptions, expected {count} "
            "(prompts.openai.prompts_per_category)"
        )
    for number, description in enumerate(descriptions, start=1):
        if not description:
            raise PromptError(f"description {number} of the LLM answer is empty")
        if len(description) > max_chars:
            raise PromptError(
                f"description {number} of the LLM answer has {len(description)} characters, more than "
                f"prompts.openai.max_prompt_chars = {max_chars}"
            )
    folded = [" ".join(description.casefold().split()) for description in descriptions]
    repeated = [number for number, text in enumerate(folded, start=1) if text in folded[: number - 1]]
    if repeated:
        raise PromptError(f"descriptions {repeated} of the LLM answer repeat earlier ones; they must be distinct")
    return descriptions


def _json_descriptions(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise PromptError(f"the LLM answer looks like JSON but does not parse: {error}") from None
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        if len(lists) != 1:
            raise PromptError("the LLM answer is a JSON object without exactly one list of descriptions")
        value = lists[0]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PromptError("the LLM answer is JSON but not a list of strings")
    return value


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def fetch_descriptions(
    request: Mapping, openai_settings: Mapping, cache_dir: Path, env: Mapping[str, str], label: str
) -> list[str]:
    """The validated descriptions answering ``request``: from ``cache_dir`` if cached, else from the endpoint
    (with retries, see the module docstring), then cached. ``label`` names the prompt set in messages.

    Jobs asking the same question at once (a category's train and test prompt sets run in parallel) take turns on
    an exclusive lock of ``<cache_dir>.locks/<request_hash>.lock`` (beside the cache folder, which holds answers
    only), so the second waits for the first's answer and reads it from the cache instead of asking again."""
    cache_dir = Path(cache_dir)
    cache_path = cache_dir / f"{request_hash(request)}.json"
    locks = cache_dir.with_name(cache_dir.name + ".locks")
    locks.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(locks / f"{cache_path.stem}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _cached_or_fetched(request, openai_settings, cache_path, env, label)


def _cached_or_fetched(
    request: Mapping, openai_settings: Mapping, cache_path: Path, env: Mapping[str, str], label: str
) -> list[str]:
    count, max_chars = openai_settings["prompts_per_category"], openai_settings["max_prompt_chars"]
    if cache_path.exists():
        try:
            descriptions = parse_descriptions(json.loads(cache_path.read_text("utf-8"))["content"], count, max_chars)
        except (PromptError, ValueError, KeyError, TypeError) as error:
            raise PromptError(f"cached LLM answer {cache_path} is unusable ({error}); delete it to ask again") from None
        log.info("%s: %d descriptions from the cache %s", label, len(descriptions), cache_path)
        return descriptions

    key_variable = openai_settings["api_key_env"]
    api_key = env.get(key_variable, "")
    if not api_key.strip():
        raise PromptError(
            f"{label}: the openai prompt backend needs an API key and the environment variable {key_variable} "
            f"is not set or empty. Set it (export {key_variable}=...; endpoints that do not check keys accept any "
            "non-empty value), or name the variable that holds the key in prompts.openai.api_key_env, or use "
            "prompts.backend: template."
        )
    content, served_model = _complete(request, openai_settings, api_key, label)
    try:
        descriptions = parse_descriptions(content, count, max_chars)
    except PromptError as error:
        excerpt = _redact((content or "")[:200], api_key)
        raise PromptError(
            f"{label}: unusable answer from {request['base_url']} (model {request['model']}): {error}. The answer "
            f"begins {excerpt!r}. Nothing was cached: rerun to ask again, or lower prompts.openai.temperature "
            "or choose another prompts.openai.model."
        ) from None
    write_json(
        {"request": dict(request), "response_model": served_model, "content": _redact(content, api_key)}, cache_path
    )
    log.info("%s: %d descriptions from %s, cached in %s", label, len(descriptions), request["model"], cache_path)
    return descriptions


def _complete(request: Mapping, openai_settings: Mapping, api_key: str, label: str) -> tuple[str | None, str]:
    """Send ``request``; returns the answer's text and the served model name. The client retries transient
    failures itself (see the module docstring); what is left to do here is a message that names the key to
    change."""
    import openai  # only the openai backend needs the package

    max_retries = openai_settings["max_retries"]
    client = openai.OpenAI(
        api_key=api_key, base_url=request["base_url"], timeout=openai_settings["timeout_s"], max_retries=max_retries
    )
    endpoint = f"{request['base_url']} (model {request['model']})"
    try:
        response = client.chat.completions.create(
            model=request["model"], temperature=request["temperature"], messages=request["messages"]
        )
    except openai.APITimeoutError:  # before APIConnectionError, its base class
        problem = f"no answer within {openai_settings['timeout_s']} s (prompts.openai.timeout_s)"
    except openai.APIConnectionError:
        problem = "connection failed (check prompts.openai.base_url)"
    except openai.AuthenticationError as error:
        raise PromptError(
            _redact(
                f"{label}: {endpoint} rejected the API key in the environment variable "
                f"{openai_settings['api_key_env']} (HTTP {error.status_code}): {error.message}",
                api_key,
            )
        ) from None
    except openai.APIStatusError as error:
        if not _retried_status(error.status_code):
            raise PromptError(
                _redact(
                    f"{label}: {endpoint} refused the request (HTTP {error.status_code}): {error.message}; check "
                    "prompts.openai.base_url and prompts.openai.model",
                    api_key,
                )
            ) from None
        problem = _redact(f"HTTP {error.status_code}: {error.message}", api_key)
    else:
        if not response.choices:
            raise PromptError(f"{label}: {endpoint} answered without any choice")
        return response.choices[0].message.content, response.model
    retries = f"{max_retries} {'retry' if max_retries == 1 else 'retries'}"
    raise PromptError(
        f"{label}: {endpoint} still failed after up to {retries}, last with {problem}; try again later or raise "
        "prompts.openai.max_retries"
    )


def _retried_status(status: int) -> bool:
    """Whether the openai client retries an HTTP status (``_should_retry`` in its ``_base_client``): a failure
    with it is transient, one the retries did not outlast."""
    return status in (408, 409, 429) or status >= 500


def _checked_images(images: Sequence[tuple[str, int, Sequence[str]]]) -> list[tuple[str, int, Sequence[str]]]:
    """``images`` sorted by index, after checking that ids and indices are unique."""
    ordered = sorted(images, key=lambda image: int(image[1]))
    for position, what in ((0, "image ids"), (1, "image indices")):
        counts = Counter(image[position] for image in ordered)
        repeated = sorted(str(value) for value, count in counts.items() if count > 1)
        if repeated:
            raise ValueError(f"repeated {what} {repeated[:5]} in the images of one prompt set")
    return ordered


def read_class_names(path: str | Path) -> dict[str, str]:
    """A synset-words file as ImageNet ships it (``LOC_synset_mapping.txt``, ``words.txt``): one
    ``<wnid> <words>`` line per class, e.g. ``n01440764 tench, Tinca tinca``."""
    names = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, words = line.strip().partition(" ")
        if not words.strip():
            raise PromptError(f"{path}, line {number}: expected '<wnid> <class words>', got {line!r}")
        names[key] = words.strip()
    return names


def prompt_class_name(category: str, class_names: Mapping[str, str] | str | None) -> str:
    """The class as the prompt names it: ``prompts.class_names`` (a mapping, or a synset-words file: the whole
    words string, as 3D-DST's prompts use it) or, without it, the category with underscores as spaces."""
    if class_names is None:
        return category.replace("_", " ")
    names = read_class_names(class_names) if isinstance(class_names, str) else class_names
    if category not in names:
        raise PromptError(
            f"prompts.class_names has no name for the category {category!r}: add it (or drop prompts.class_names)"
        )
    return str(names[category])


def build_prompt_set(
    category: str,
    split: str,
    images: Sequence[tuple[str, int, Sequence[str]]],
    settings: Mapping | None,
    global_seed: int,
    cache_dir: Path,
    env: Mapping[str, str] = os.environ,
) -> dict:
    """The prompt set of ``category`` in ``split``, as written to ``results/prompts/{split}/{category}.json``.

    ``images``: (image_id, image_index, CAD keywords of the image's model) for every image of the set.
    ``settings``: the ``prompts:`` config block (see ``resolve_prompt_settings``). ``cache_dir``: the LLM
    answer cache. ``env``: where the API key variable is looked up.
    Returns {"category", "split", "backend", "model" (None for template), "request_hash" (None for template),
    "seed" (the global seed the per-image draws derive from), "negative_prompt", "candidates" (the distinct
    prompts: the LLM's descriptions in its order, or the template prompts sorted), "prompts" {image_id: prompt}
    in index order}.
    """
    resolved = resolve_prompt_settings(settings)
    ordered = _checked_images(images)
    class_name = prompt_class_name(category, resolved["class_names"])
    label = f"prompts {split}/{category}"

    def rng_of(image_index: int):
        return image_rng(global_seed, split, category, int(image_index), "prompt")

    if resolved["backend"] == "template":
        prompts = {}
        for image_id, image_index, keywords in ordered:
            rng = rng_of(image_index)
            color = COLORS[int(rng.integers(len(COLORS)))] if resolved["colors"] else None
            kept = clean_keywords(keywords, class_name, resolved["max_keywords"]) if resolved["use_keywords"] else []
            prompts[image_id] = template_prompt(resolved["template"], class_name, color, kept)
        candidates = sorted(set(prompts.values()))
        model, hash_of_request = None, None
    else:
        llm = resolved["openai"]
        request = llm_request(class_name, category_keywords(ordered, class_name, resolved["max_keywords"]), llm)
        candidates = fetch_descriptions(request, llm, Path(cache_dir), env, label)
        prompts = {
            image_id: candidates[int(rng_of(image_index).integers(len(candidates)))]
            for image_id, image_index, _ in ordered
        }
        model, hash_of_request = llm["model"], request_hash(request)
    return {
        "category": category,
        "split": split,
        "backend": resolved["backend"],
        "model": model,
        "request_hash": hash_of_request,
        "seed": int(global_seed),
        "negative_prompt": resolved["negative_prompt"],
        "candidates": candidates,
        "prompts": prompts,
    }
