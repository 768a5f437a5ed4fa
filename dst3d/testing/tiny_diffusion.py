"""Tiny random-weight Stable Diffusion + canny ControlNet pipelines, saved like the real ones.

Shared by the tests (``tests/test_diffusion.py``, the ControlNet workflow test) and ``bench/generate.py``: they
build these folders once and run the real ``generate`` backend on them through ``from_pretrained``, so loading, batching, seeding and writing are exercised
without any downloaded weights. The components follow the layout of the published models (UNet, ControlNet,
VAE, CLIP text encoder(s), a byte-level BPE tokenizer with its own small vocabulary, a DDIM scheduler) with a
few channels each: a 32 px image runs a denoising step in milliseconds on a CPU.

The ControlNet's zero-initialised output convolutions are re-drawn at random, so the edge map really changes the
image (a freshly initialised ControlNet adds exactly zero to the UNet).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from dst3d.generate.diffusion import import_diffusers

#: Words given BPE merges (built letter by letter), so that the test prompts and the published prompt templates
#: tokenise into few tokens, well within the text encoder's 77, rather than one token per letter.
_MERGED_WORDS = (
    "a",
    "an",
    "of",
    "car",
    "bus",
    "photo",
    "red",
    "blue",
    "image",
    "best",
    "quality",
    "extremely",
    "detailed",
    "longbody",
    "lowres",
    "bad",
    "anatomy",
    "hands",
    "missing",
    "fingers",
    "extra",
    "digit",
    "fewer",
    "digits",
    "cropped",
    "worst",
    "low",
)


def tiny_tokenizer():
    """A CLIP tokenizer over the 256 byte-level symbols, their end-of-word forms and a few merged words.

    No installed package ships a CLIP vocabulary, so it is written here: ``<|startoftext|>`` and
    ``<|endoftext|>`` take the last two ids, as in the real vocabulary. In transformers 5 the vocabulary and
    merges must be passed as ``vocab=`` / ``merges=`` (``vocab_file=`` is silently ignored).
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    merges: list[tuple[str, str]] = []
    for word in _MERGED_WORDS:
        prefix = word[0]
        for position, letter in enumerate(word[1:], start=1):
            suffix = letter + "</w>" if position == len(word) - 1 else letter
            if prefix + suffix not in tokens:
                merges.append((prefix, suffix))
                tokens.append(prefix + suffix)
            prefix += suffix
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: token_id for token_id, token in enumerate(tokens)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _text_config(tokenizer, with_projection: bool):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        projection_dim=32 if with_projection else 512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )


def _randomise_zero_convolutions(controlnet) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in controlnet.parameters():
            if not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))


def _sd15_scheduler():
    """The DDIM scheduler configuration of the SD 1.5 release (scaled-linear betas, ``steps_offset`` 1)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


class TinyModels(NamedTuple):
    """Folders written by ``build_tiny_pipeline``, in the roles of the settings keys of the same names."""

    base_model: Path
    controlnet_model: Path
    vae_model: Path


def _unet_shape(sdxl: bool) -> tuple[dict, dict]:
    """The tiny UNet's (and ControlNet's) blocks and text conditioning, SD 1.5- or SDXL-shaped."""
    blocks = {
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "attention_head_dim": (2, 4),
        "norm_num_groups": 32,
    }
    if sdxl:
        # Two text encoders of width 32 each; the "text_time" embedding takes six size numbers of 8 channels
        # each plus the second encoder's pooled projection (32).
        conditioning = {
            "cross_attention_dim": 64,
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 6 * 8 + 32,
            "use_linear_projection": True,
        }
    else:
        conditioning = {"cross_attention_dim": 32}
    return blocks, conditioning


def build_tiny_controlnet(path: Path, sdxl: bool = False, seed: int = 1) -> Path:
    """Write one more tiny ControlNet (another seed) that fits ``build_tiny_pipeline``'s base: a stand-in for a
    second conditioning, such as depth. Returns ``path``."""
    import_diffusers()
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    blocks, conditioning = _unet_shape(sdxl)
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32), **blocks, **conditioning)
    _randomise_zero_convolutions(controlnet)
    controlnet.save_pretrained(path)
    return Path(path)


def build_tiny_pipeline(root: Path, sdxl: bool = False) -> TinyModels:
    """Write a tiny base pipeline, a tiny ControlNet and a standalone copy of its VAE under ``root``.

    All are folders as ``save_pretrained`` writes them, loadable by
    ``StableDiffusionControlNetPipeline.from_pretrained(base, controlnet=ControlNetModel.from_pretrained(...))``
    (or the SDXL classes when ``sdxl``); the VAE folder stands in for a separately published VAE such as the
    SDXL fp16-fix one. Latents are 4 x H/2 x W/2 (a two-level VAE); sizes must be multiples of 8 as for the real
    models. Weights are drawn from fixed seeds: the same call writes the same models.
    """
    import_diffusers()
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    blocks, conditioning = _unet_shape(sdxl)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        **blocks,
        **conditioning,
    )
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32), **blocks, **conditioning)
    _randomise_zero_convolutions(controlnet)
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        sample_size=32,
    )
    scheduler = _sd15_scheduler()
    models = TinyModels(root / "base", root / "controlnet", root / "vae")
    # The base folder is a plain text-to-image pipeline without a ControlNet, as the published base models are:
    # the backend loads the ControlNet from its own folder.
    if sdxl:
        from diffusers import StableDiffusionXLPipeline

        base = StableDiffusionXLPipeline(
            vae=vae,
            text_encoder=CLIPTextModel(_text_config(tokenizer, with_projection=False)),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer, with_projection=True)),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
            add_watermarker=False,
        )
    else:
        from diffusers import StableDiffusionPipeline

        base = StableDiffusionPipeline(
            vae=vae,
            text_encoder=CLIPTextModel(_text_config(tokenizer, with_projection=False)),
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    base.save_pretrained(models.base_model)
    controlnet.save_pretrained(models.controlnet_model)
    vae.save_pretrained(models.vae_model)
    return models


def build_sd15_shaped_pipeline(root: Path) -> TinyModels:
    """Write a random-weight pipeline with the published shapes of SD 1.5 + the v1.1 canny ControlNet under
    ``root`` (about 4.6 GB in float32), for timing on a GPU: a network's speed does not depend on its weights,
    so this times what the real models cost without downloading them. Its images are noise.

    UNet: 320/640/1280/1280 channels, two layers per block, cross-attention width 768, 8 heads, 64 x 64
    latents (512 px); ControlNet: the UNet's encoder (``ControlNetModel.from_unet``); VAE: 128/256/512/512
    channels; text encoder: CLIP ViT-L/14's (12 layers of width 768), over the small vocabulary of
    :func:`tiny_tokenizer` (the embedding table's size does not change the cost of a step). The VAE folder is
    left empty (``vae_model`` stays null).
    """
    import_diffusers()
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    controlnet = ControlNetModel.from_unet(unet)
    _randomise_zero_convolutions(controlnet)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=tokenizer.model_max_length,
            projection_dim=768,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_act="quick_gelu",
        )
    )
    scheduler = _sd15_scheduler()
    models = TinyModels(root / "base", root / "controlnet", root / "vae")
    StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    ).save_pretrained(models.base_model)
    controlnet.save_pretrained(models.controlnet_model)
    return models
