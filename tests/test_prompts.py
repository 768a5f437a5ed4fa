"""Prompt sets: template prompts, deterministic assignment, and the openai backend over real HTTP against a
scripted OpenAI-compatible server (retries, timeouts, caching, validation, error texts, key hygiene)."""

from __future__ import annotations

import json
import logging
import random
import socket

import pytest
from llm_server import FakeLLMServer, answer, error

from dst3d.generate.prompts import (
    COLORS,
    DEFAULT_TEMPLATE,
    PROMPT_PRESETS,
    PromptError,
    build_prompt_set,
    parse_descriptions,
    resolve_prompt_settings,
)
from dst3d.identity import image_id
from dst3d.io import write_json

SEED = 2024
KEY_VARIABLE = "DST3D_TEST_LLM_KEY"
KEY = "sk-test-7Qv9-not-a-real-key-3fa1c2"
ENV = {KEY_VARIABLE: KEY}
DESCRIPTIONS = [
    "A photo of a sedan parked on a rainy city street at night",
    "A car driving along a coastal road at sunset",
    "A car in a snowy mountain village under a grey sky",
]


def car_images(count: int, keywords_of=lambda index: ["car", "sedan", "Sedan", " coupe "]) -> list:
    return [(image_id("train", "car", index), index, keywords_of(index)) for index in range(count)]


def template_set(images, **settings) -> dict:
    return build_prompt_set("car", "train", images, settings, SEED, cache_dir=None, env={})


# ---------------------------------------------------------------- template backend


def test_default_template_prompt_is_colour_class_and_keywords():
    images = car_images(20, keywords_of=lambda index: ["car", "sedan", "Sedan", " coupe "] if index % 2 else ["auto"])
    prompt_set = template_set(images)
    # Pinned: the colour draw (seed 2024, per image) is part of the dataset's definition.
    assert [prompt_set["prompts"][image_id("train", "car", index)] for index in range(4)] == [
        "An image of white car, auto, best quality, extremely detailed",
        "An image of red car, sedan, coupe, best quality, extremely detailed",
        "An image of navy blue car, auto, best quality, extremely detailed",
        "An image of brown car, sedan, coupe, best quality, extremely detailed",
    ]
    for image, index, _ in images:
        subject = "car, sedan, coupe" if index % 2 else "car, auto"
        prompt = prompt_set["prompts"][image]
        assert prompt.startswith("An image of ") and prompt.endswith(f" {subject}, best quality, extremely detailed")
        assert (
            prompt.removeprefix("An image of ").removesuffix(f" {subject}, best quality, extremely detailed") in COLORS
        )
    assert prompt_set["candidates"] == sorted(set(prompt_set["prompts"].values()))
    assert (prompt_set["backend"], prompt_set["model"], prompt_set["request_hash"]) == ("template", None, None)
    assert prompt_set["seed"] == SEED and prompt_set["negative_prompt"].startswith("longbody, lowres, bad anatomy")
    assert (prompt_set["category"], prompt_set["split"]) == ("car", "train")


def test_plain_template_is_the_published_3d_dst_prompt():
    prompt_set = template_set(car_images(5), colors=False, use_keywords=False)
    assert set(prompt_set["prompts"].values()) == {"An image of car, best quality, extremely detailed"}
    assert prompt_set["candidates"] == ["An image of car, best quality, extremely detailed"]


@pytest.mark.parametrize(
    "preset, expected",
    [
        ("3d-dst", "An image of car, best quality, extremely detailed"),  # 3D-DST paper and code
        ("p3d-diffusion", "car, best quality, extremely detailed"),  # P3D-Diffusion's ControlNet/run_canny.py
    ],
)
def test_presets_give_the_published_prompts(preset, expected):
    prompt_set = template_set(car_images(5), preset=preset)
    assert set(prompt_set["prompts"].values()) == {expected}
    # The default template is 3D-DST's string.
    assert resolve_prompt_settings({})["template"] == PROMPT_PRESETS["3d-dst"]["template"]


def test_the_paper_preset_colours_the_category_and_given_keys_win():
    prompts = template_set(car_images(20), preset="p3d-diffusion-paper")["prompts"].values()
    assert {prompt.removesuffix(" car, best quality, extremely detailed") for prompt in prompts} <= set(COLORS)
    assert len(set(prompts)) > 1
    plain = template_set(car_images(5), preset="p3d-diffusion-paper", colors=False)["prompts"].values()
    assert set(plain) == {"car, best quality, extremely detailed"}
    with pytest.raises(PromptError, match="prompts.preset"):
        resolve_prompt_settings({"preset": "sd-default"})


def test_custom_template_keyword_limit_and_class_spelling():
    images = [("val-school_bus-000000", 0, ["yellow bus", "school_bus", "coach", "minibus"])]
    prompt_set = build_prompt_set(
        "school_bus",
        "val",
        images,
        {"template": "a photo of a {class}", "colors": False, "max_keywords": 2},
        SEED,
        cache_dir=None,
        env={},
    )
    assert prompt_set["prompts"]["val-school_bus-000000"] == "a photo of a school bus, yellow bus, coach"


def test_assignment_depends_only_on_seed_split_category_and_index():
    images = car_images(200)
    full = template_set(images)["prompts"]
    shuffled = images[:]
    random.Random(3).shuffle(shuffled)
    assert template_set(shuffled)["prompts"] == full
    assert list(template_set(shuffled)["prompts"]) == [image for image, _, _ in images]  # index order
    subset = template_set(images[150:] + images[:7])["prompts"]
    assert subset == {image: full[image] for image in subset}
    assert len(set(full.values())) >= 15, "colours are drawn per image"
    other_seed = build_prompt_set("car", "train", images, {}, SEED + 1, cache_dir=None, env={})["prompts"]
    other_split = build_prompt_set("car", "val", images, {}, SEED, cache_dir=None, env={})["prompts"]
    assert sum(other_seed[image] != full[image] for image in full) > 100
    assert sum(other_split[image] != full[image] for image in full) > 100


def test_colours_are_24_distinct_names():
    assert len(COLORS) == 24 and len(set(COLORS)) == 24 and all(color.strip() == color for color in COLORS)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"template": "An image of {klass}"}, r"prompts\.template must contain the field \{class\}"),
        ({"template": "An image of {class} in {place}"}, r"prompts\.template"),
        ({"template": "An image of {class"}, r"prompts\.template .* not a valid format string"),
        ({"backend": "llama"}, r"prompts\.backend"),
        ({"colours": True}, r"prompts\.colours is not a known key \(did you mean colors\?\)"),
        ({"openai": {"modle": "x"}}, r"prompts\.openai\.modle is not a known key \(did you mean model\?\)"),
        ({"openai": "gpt"}, r"prompts\.openai: 'gpt' is not of type 'object'"),
        ({"openai": {"temperature": 2.5}}, r"prompts\.openai\.temperature"),
        ({"openai": {"model": " "}}, r"prompts\.openai\.model"),
        ({"openai": {"max_retries": -1}}, r"prompts\.openai\.max_retries"),
        ({"openai": {"timeout_s": 0}}, r"prompts\.openai\.timeout_s"),
        ({"openai": {"prompts_per_category": 0}}, r"prompts\.openai\.prompts_per_category"),
        ({"openai": {"temperature": "hot"}}, r"prompts\.openai\.temperature"),
    ],
)
def test_invalid_settings_name_the_config_key(settings, message):
    with pytest.raises(PromptError, match=message):
        resolve_prompt_settings(settings)


def test_defaults_come_from_the_schema_and_the_preset():
    from dst3d.config_schema import block_settings

    defaults = resolve_prompt_settings(None)
    schema_defaults = block_settings("prompts", {})
    assert defaults == {**schema_defaults, "template": DEFAULT_TEMPLATE, "colors": True, "use_keywords": True}
    assert (defaults["backend"], defaults["preset"], defaults["max_keywords"]) == ("template", None, 8)
    assert (defaults["openai"]["model"], defaults["openai"]["max_retries"]) == ("gpt-4o-mini", 5)
    # None counts as absent, also for a key the preset sets.
    assert resolve_prompt_settings({"openai": {"model": None}})["openai"]["model"] == "gpt-4o-mini"
    assert resolve_prompt_settings({"preset": "3d-dst", "colors": None})["colors"] is False
    # The schema's order whatever the config's: the rule's params compare as text.
    shuffled = resolve_prompt_settings(
        {"openai": {"timeout_s": 5.0, "model": "m"}, "colors": False, "backend": "openai"}
    )
    assert list(shuffled) == list(defaults) and list(shuffled["openai"]) == list(defaults["openai"])


def test_bad_image_lists_are_rejected():
    with pytest.raises(TypeError, match="sequence of strings"):
        template_set([("train-car-000000", 0, "car;sedan")])
    with pytest.raises(ValueError, match=r"repeated image indices \['0'\]"):
        template_set([("train-car-000000", 0, []), ("train-car-000001", 0, [])])
    with pytest.raises(ValueError, match=r"repeated image ids \['train-car-000000'\]"):
        template_set([("train-car-000000", 0, []), ("train-car-000000", 1, [])])


# ---------------------------------------------------------------- answer validation


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(DESCRIPTIONS),
        "```json\n" + json.dumps(DESCRIPTIONS, indent=2) + "\n```",
        json.dumps({"descriptions": DESCRIPTIONS}),
        "\n".join(f"{number}. {text}" for number, text in enumerate(DESCRIPTIONS, start=1)),
        "\n\n".join(f'- "{text}"' for text in DESCRIPTIONS),
    ],
)
def test_accepted_answer_forms(content):
    assert parse_descriptions(content, 3, 120) == DESCRIPTIONS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps(DESCRIPTIONS[:2]), r"holds 2 descriptions, expected 3 \(prompts\.openai\.prompts_per_category\)"),
        ("Here are your descriptions:\n" + "\n".join(DESCRIPTIONS), "holds 4 descriptions, expected 3"),
        (
            json.dumps([DESCRIPTIONS[0], "x" * 121, DESCRIPTIONS[2]]),
            r"description 2 .* 121 characters, more than prompts\.openai\.max_prompt_chars = 120",
        ),
        ('["A car on a road", "A car at night",', "looks like JSON but does not parse"),
        (json.dumps([1, 2, 3]), "not a list of strings"),
        (json.dumps([DESCRIPTIONS[0], DESCRIPTIONS[1], DESCRIPTIONS[0].upper()]), r"descriptions \[3\] .* repeat"),
        ("   ", "empty"),
        (json.dumps(["", DESCRIPTIONS[0], DESCRIPTIONS[1]]), "description 1 of the LLM answer is empty"),
    ],
)
def test_rejected_answers_say_what_is_wrong(content, message):
    with pytest.raises(PromptError, match=message):
        parse_descriptions(content, 3, 120)


# ---------------------------------------------------------------- openai backend over HTTP


@pytest.fixture(autouse=True)
def no_proxy_for_the_test_server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy set for package registries must not take these requests


@pytest.fixture
def llm_server():
    server = FakeLLMServer().start()
    yield server
    server.stop()


def openai_settings(base_url: str, **overrides) -> dict:
    llm = {
        "base_url": base_url,
        "model": "test-model",
        "api_key_env": KEY_VARIABLE,
        "temperature": 0.5,
        "prompts_per_category": 3,
        "timeout_s": 2.0,
        "max_retries": 2,
        "max_prompt_chars": 120,
    }
    return {"backend": "openai", "openai": {**llm, **overrides}}


def openai_set(server_or_url, cache_dir, images=None, env=ENV, **overrides) -> dict:
    base_url = getattr(server_or_url, "base_url", server_or_url)
    return build_prompt_set(
        "car", "train", images or car_images(40), openai_settings(base_url, **overrides), SEED, cache_dir, env
    )


def cache_files(cache_dir) -> list:
    return sorted(cache_dir.glob("*")) if cache_dir.exists() else []


def test_openai_backend_assigns_the_llm_descriptions(llm_server, tmp_path):
    llm_server.script = [answer(json.dumps(DESCRIPTIONS))]
    prompt_set = openai_set(llm_server, tmp_path / "cache")

    assert prompt_set["candidates"] == DESCRIPTIONS
    assert set(prompt_set["prompts"].values()) == set(DESCRIPTIONS)  # 40 images draw from all three
    assert (prompt_set["backend"], prompt_set["model"], prompt_set["seed"]) == ("openai", "test-model", SEED)
    assert [path.name for path in cache_files(tmp_path / "cache")] == [f"{prompt_set['request_hash']}.json"]
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert (request.body["model"], request.body["temperature"]) == ("test-model", 0.5)
    user_message = request.body["messages"][-1]["content"]
    assert '"car, coupe, sedan"' in user_message and "3 different descriptions" in user_message
    assert "at most 120 characters" in user_message


def test_cached_answer_is_reused_without_a_request_or_a_key(llm_server, tmp_path):
    llm_server.script = [answer(json.dumps(DESCRIPTIONS))]
    first = openai_set(llm_server, tmp_path / "cache")
    rerun = openai_set(llm_server, tmp_path / "cache", env={})  # a second user without the key
    assert rerun == first and len(llm_server.requests) == 1

    images = car_images(40)
    shuffled_subset = images[30:] + images[:5]
    random.Random(1).shuffle(shuffled_subset)
    subset = openai_set(llm_server, tmp_path / "cache", images=shuffled_subset)
    assert subset["prompts"] == {image: first["prompts"][image] for image in subset["prompts"]}
    assert len(llm_server.requests) == 1


def test_two_jobs_asking_at_once_send_one_request(llm_server, tmp_path):
    """A category's train and test prompt sets ask the same question; run at the same moment, the second waits
    for the first's answer (the cache lock) instead of asking too."""
    from concurrent.futures import ThreadPoolExecutor

    from llm_server import Reply

    llm_server.script = [Reply(content=json.dumps(DESCRIPTIONS), delay_s=0.5)] * 2
    with ThreadPoolExecutor(2) as pool:
        sets = list(pool.map(lambda _: openai_set(llm_server, tmp_path / "cache"), range(2)))
    assert sets[0] == sets[1] and len(llm_server.requests) == 1


def test_any_change_to_the_request_misses_the_cache(llm_server, tmp_path):
    llm_server.script = [answer(json.dumps(DESCRIPTIONS)), answer(json.dumps(DESCRIPTIONS[::-1]))]
    first = openai_set(llm_server, tmp_path / "cache")
    warmer = openai_set(llm_server, tmp_path / "cache", temperature=0.9)
    assert len(llm_server.requests) == 2 and llm_server.requests[1].body["temperature"] == 0.9
    assert warmer["request_hash"] != first["request_hash"] and warmer["candidates"] == DESCRIPTIONS[::-1]
    assert len(cache_files(tmp_path / "cache")) == 2


def test_rate_limit_and_server_errors_are_retried_by_the_client(llm_server, tmp_path):
    """The openai client retries (prompts.openai.max_retries); it waits what Retry-After asks, else its backoff
    (0.5 s before the first retry, 1 s before the second, less up to 25 % jitter)."""
    llm_server.script = [
        error(429, "slow down", retry_after_s=0.01),
        error(500, "boom"),
        answer(json.dumps(DESCRIPTIONS)),
    ]
    prompt_set = openai_set(llm_server, tmp_path / "cache")

    assert prompt_set["candidates"] == DESCRIPTIONS
    arrivals = [request.received_s for request in llm_server.requests]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] < 0.3  # the server's 10 ms, not the client's backoff
    assert arrivals[2] - arrivals[1] >= 0.7  # the second retry's backoff: 1 s less the jitter


def test_exhausted_retries_fail_with_a_clear_message_and_cache_nothing(llm_server, tmp_path):
    llm_server.script = [error(503, "overloaded", retry_after_s=0.01)] * 3
    with pytest.raises(PromptError) as raised:
        openai_set(llm_server, tmp_path / "cache")
    message = str(raised.value)
    assert "prompts train/car" in message and "after up to 2 retries" in message and "HTTP 503" in message
    assert "prompts.openai.max_retries" in message
    assert len(llm_server.requests) == 3 and not cache_files(tmp_path / "cache")


def test_no_retries_when_max_retries_is_zero(llm_server, tmp_path):
    llm_server.script = [error(429, "slow down", retry_after_s=0.01), answer(json.dumps(DESCRIPTIONS))]
    with pytest.raises(PromptError, match=r"after up to 0 retries, last with HTTP 429: .*slow down"):
        openai_set(llm_server, tmp_path / "cache", max_retries=0)
    assert len(llm_server.requests) == 1


def test_a_slow_answer_times_out_and_is_retried(llm_server, tmp_path):
    llm_server.script = [answer(json.dumps(DESCRIPTIONS), delay_s=2.0), answer(json.dumps(DESCRIPTIONS))]
    prompt_set = openai_set(llm_server, tmp_path / "cache", timeout_s=0.3)
    assert prompt_set["candidates"] == DESCRIPTIONS and len(llm_server.requests) == 2


def test_persistent_timeouts_name_the_timeout_setting(llm_server, tmp_path):
    llm_server.script = [answer(json.dumps(DESCRIPTIONS), delay_s=2.0)] * 2
    expected = r"after up to 1 retry, last with no answer within 0\.3 s \(prompts\.openai\.timeout_s\)"
    with pytest.raises(PromptError, match=expected):
        openai_set(llm_server, tmp_path / "cache", timeout_s=0.3, max_retries=1)
    assert len(llm_server.requests) == 2


def test_unreachable_endpoint_fails_after_retries(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    expected = r"after up to 1 retry, last with connection failed \(check prompts\.openai\.base_url\)"
    with pytest.raises(PromptError, match=expected):
        openai_set(f"http://127.0.0.1:{port}/v1", tmp_path / "cache", max_retries=1)


def test_malformed_answer_is_rejected_not_retried_and_not_cached(llm_server, tmp_path):
    llm_server.script = [answer("Sure! A car on a road.\nA car at night.")]
    with pytest.raises(PromptError) as raised:
        openai_set(llm_server, tmp_path / "cache")
    message = str(raised.value)
    assert "unusable answer" in message and "holds 2 descriptions, expected 3" in message
    assert "Sure! A car on a road." in message and "Nothing was cached" in message
    assert len(llm_server.requests) == 1 and not cache_files(tmp_path / "cache")

    llm_server.script = [answer(json.dumps(DESCRIPTIONS))]  # a rerun asks again
    assert openai_set(llm_server, tmp_path / "cache")["candidates"] == DESCRIPTIONS


def test_client_errors_fail_at_once_naming_what_to_check(llm_server, tmp_path):
    llm_server.script = [error(404, "The model `test-model` does not exist")]
    with pytest.raises(PromptError, match=r"HTTP 404.*does not exist.*prompts\.openai\.model"):
        openai_set(llm_server, tmp_path / "cache")
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize("env", [{}, {KEY_VARIABLE: ""}, {"OPENAI_API_KEY": KEY}])
def test_missing_key_fails_before_any_request_naming_the_variable(llm_server, tmp_path, env):
    with pytest.raises(PromptError) as raised:
        openai_set(llm_server, tmp_path / "cache", env=env)
    message = str(raised.value)
    assert f"environment variable {KEY_VARIABLE} is not set or empty" in message
    assert "prompts.openai.api_key_env" in message
    assert llm_server.requests == [] and KEY not in message


def test_the_key_never_appears_in_errors_logs_outputs_or_cache(llm_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    llm_server.script = [error(401, f"Incorrect API key provided: {KEY}")]
    with pytest.raises(PromptError) as rejected:
        openai_set(llm_server, tmp_path / "cache")
    assert f"rejected the API key in the environment variable {KEY_VARIABLE} (HTTP 401)" in str(rejected.value)
    assert len(llm_server.requests) == 1, "an authentication failure is not retried"

    llm_server.script = [error(500, f"upstream saw {KEY}", retry_after_s=0.01)] * 2
    with pytest.raises(PromptError) as exhausted:
        openai_set(llm_server, tmp_path / "cache", max_retries=1)

    llm_server.script = [answer(json.dumps(DESCRIPTIONS))]
    prompt_set = openai_set(llm_server, tmp_path / "cache")
    write_json(prompt_set, tmp_path / "car.json")

    assert llm_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"  # the key was in use
    assert KEY not in str(rejected.value) and KEY not in str(exhausted.value) and "***" in str(exhausted.value)
    assert KEY not in caplog.text  # the client's own logs, at DEBUG, included
    assert KEY not in (tmp_path / "car.json").read_text("utf-8")
    [cached] = cache_files(tmp_path / "cache")
    assert KEY not in cached.read_text("utf-8")


def test_class_names_come_from_a_synset_words_file_or_a_mapping(tmp_path):
    words = tmp_path / "LOC_synset_mapping.txt"
    words.write_text("n01440764 tench, Tinca tinca\nn02690373 airliner\n")
    images = [(image_id("train", "n02690373", 0), 0, [])]
    settings = {"preset": "3d-dst", "class_names": str(words)}
    prompt_set = build_prompt_set("n02690373", "train", images, settings, SEED, cache_dir=None, env={})
    assert list(prompt_set["prompts"].values()) == ["An image of airliner, best quality, extremely detailed"]
    tench = [(image_id("train", "n01440764", 0), 0, [])]
    prompt_set = build_prompt_set("n01440764", "train", tench, settings, SEED, cache_dir=None, env={})
    # The whole words string, as 3D-DST's synset prompts use it.
    assert list(prompt_set["prompts"].values()) == ["An image of tench, Tinca tinca, best quality, extremely detailed"]
    mapped = {"preset": "3d-dst", "class_names": {"n01440764": "tench"}}
    assert "of tench, best" in next(
        iter(build_prompt_set("n01440764", "train", tench, mapped, SEED, None, {})["prompts"].values())
    )
    with pytest.raises(PromptError, match="no name for the category 'n01440764'"):
        build_prompt_set("n01440764", "train", tench, {"class_names": {"x": "y"}}, SEED, cache_dir=None, env={})
