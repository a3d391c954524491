"""Tiny diffusers pipelines with random weights, built in code (no hub access) and saved
with ``save_pretrained``: the diffusers provider loads them exactly as a real model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = [
    "a",
    "the",
    "red",
    "fox",
    "cat",
    "runs",
    "jumps",
    "in",
    "snow",
    "blue",
    "sky",
    "dog",
    "walks",
    "on",
    "beach",
    "robot",
    "dances",
]


def tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def t5_encoder(vocab_size: int) -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(config)


def wan_components(in_channels: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

    torch.manual_seed(0)
    tok = tokenizer()
    return {
        "vae": AutoencoderKLWan(
            base_dim=3,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        ),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
        "text_encoder": t5_encoder(len(tok)),
        "tokenizer": tok,
        "transformer": WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=in_channels,
            out_channels=16,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=32,
        ),
    }


def save_wan_t2v(path: Path) -> Path:
    from diffusers import WanPipeline

    WanPipeline(**wan_components(16)).save_pretrained(path)
    return path


def save_wan_i2v(path: Path) -> Path:
    from diffusers import WanImageToVideoPipeline

    # Wan 2.2-style image-to-video: the first frame enters as latents (16 + 16 + 4 mask
    # channels), no CLIP image encoder.
    pipe = WanImageToVideoPipeline(**wan_components(36), image_encoder=None, image_processor=None)
    pipe.save_pretrained(path)
    return path
