#!/usr/bin/env python3
"""gen_caption_fixtures.py — reference fixtures for the captioner (tests/fixtures/caption/).

Preprocessing: transformers' CLIPImageProcessor on its Pillow backend (CLIPImageProcessorPil,
what CLIPImageProcessor falls back to without torchvision) and LlavaImageProcessorPil with
do_pad (LLaVA-1.5's pad-to-square), over
  - small synthetic images written here as PNG (RGB, greyscale, RGBA), several sizes and
    aspect ratios, upscaling and downscaling, a crop larger than the resized image;
  - the sample photos in $TESSERA_DATA/images (read there, never copied: only the
    expected pixel values are written);
  - JPEG files written by Pillow (4:2:0, 4:4:4, greyscale, progressive) and WebP files
    (lossless, lossy), with Pillow's decoded pixels, so the decoders are tested byte for
    byte against Pillow's libjpeg-turbo and libwebp.
Each case records Pillow's decoded array (uint8) and the processor's pixel_values (float32).

Captioner: a tiny random LlavaForConditionalGeneration (CLIP ViT 30x30/6, 3 layers; Llama
2 layers) saved as a Hugging Face folder (safetensors, F32), and the same weights as
llama.cpp's GGUF pair: the LLM with gguf.GGUFWriter in llama.cpp's names (via
gen_llm_fixtures.write_gguf) and an mmproj in the names and keys of llama.cpp's legacy
convert_image_encoder_to_gguf.py (clip.* keys, v.* tensors, mm.0 / mm.2, fc1 stored as
ffn_down, only the layers LLaVA uses). Expected: get_image_features, the logits of a prompt
with the image tokens at every position, and greedy generate() ids.

Run from the repository root:  .venv/bin/python tools/gen_caption_fixtures.py
"""
import hashlib
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, features

import gguf
from transformers import (CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlavaConfig,
                          LlavaForConditionalGeneration)
from transformers.image_transforms import convert_to_rgb
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_llm_fixtures import write_gguf  # noqa: E402

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "caption")
DATA = os.environ.get("TESSERA_DATA", os.path.join(ROOT, "..", "shared", "data"))
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def synth(w, h, seed, mode="RGB"):
    """A smooth pattern with noise: edges and gradients for the resampler to get right."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([128 + 100 * np.sin(x / (3 + c) + y / (5 + 2 * c) + c) for c in range(4)], axis=-1)
    base[(x // 7 + y // 5) % 2 == 0] *= 0.6   # hard edges
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    if mode == "RGB":
        return Image.fromarray(img[..., :3], "RGB")
    if mode == "L":
        return Image.fromarray(img[..., 0], "L")
    return Image.fromarray(img, "RGBA")


def processor(size, crop, pad=False):
    crop_size = {"height": crop[0], "width": crop[1]}
    if pad:
        return LlavaImageProcessorPil(size={"shortest_edge": size}, crop_size=crop_size, do_pad=True,
                                      image_mean=MEAN, image_std=STD)
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size=crop_size, image_mean=MEAN, image_std=STD)


def save_npy(name, a):
    np.save(os.path.join(OUT, name), a)


def preprocess_cases():
    cases = []

    def add(name, file, image, size, crop, pad=False, store_decoded=True):
        """image: the PIL image as Pillow opens `file` (the reference decode)."""
        rgb = convert_to_rgb(image, return_numpy=True)   # what the processor starts from
        pv = processor(size, crop, pad)(image, return_tensors="np")["pixel_values"][0].astype(np.float32)
        save_npy(f"{name}.pixels.npy", pv)
        case = {"name": name, "file": file, "shortest_edge": size, "crop": list(crop), "pad_to_square": pad,
                "width": image.size[0], "height": image.size[1],
                "decoded_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()}
        if store_decoded:
            save_npy(f"{name}.decoded.npy", rgb)
        cases.append(case)

    def write(img, fname, **kw):
        img.save(os.path.join(OUT, fname), **kw)
        return Image.open(os.path.join(OUT, fname))

    # PNG, several sizes and aspect ratios
    add("png_up", "png_up.png", write(synth(37, 23, 1), "png_up.png"), 32, (32, 32))
    add("png_down", "png_down.png", write(synth(160, 100, 2), "png_down.png"), 48, (48, 48))
    add("png_tall", "png_tall.png", write(synth(50, 170, 3), "png_tall.png"), 40, (44, 36))
    add("png_grey", "png_grey.png", write(synth(64, 40, 4, "L"), "png_grey.png"), 24, (24, 24))
    add("png_rgba", "png_rgba.png", write(synth(45, 45, 5, "RGBA"), "png_rgba.png"), 30, (30, 30))
    la = synth(33, 29, 12, "RGBA").convert("LA")
    add("png_la", "png_la.png", write(la, "png_la.png"), 24, (24, 24))
    pal = synth(31, 27, 13).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    add("png_palette_trns", "png_palette_trns.png", write(pal, "png_palette_trns.png", transparency=3), 24, (24, 24))
    add("png_bigcrop", "png_up.png", Image.open(os.path.join(OUT, "png_up.png")), 24, (30, 20))
    add("png_pad", "png_down.png", Image.open(os.path.join(OUT, "png_down.png")), 40, (40, 40), pad=True)
    add("png_pad_tall", "png_tall.png", Image.open(os.path.join(OUT, "png_tall.png")), 36, (36, 36), pad=True)
    # JPEG written by Pillow: chroma subsampling 4:2:0 and 4:4:4, greyscale, progressive
    add("jpeg_420", "jpeg_420.jpg", write(synth(71, 53, 6), "jpeg_420.jpg", quality=85), 32, (32, 32))
    add("jpeg_444", "jpeg_444.jpg", write(synth(40, 64, 7), "jpeg_444.jpg", quality=92, subsampling=0), 28, (28, 28))
    add("jpeg_grey", "jpeg_grey.jpg", write(synth(33, 47, 8, "L"), "jpeg_grey.jpg", quality=80), 24, (24, 24))
    add("jpeg_progressive", "jpeg_progressive.jpg",
        write(synth(64, 48, 9), "jpeg_progressive.jpg", quality=75, progressive=True), 32, (32, 32))
    # WebP
    add("webp_lossless", "webp_lossless.webp", write(synth(40, 30, 10), "webp_lossless.webp", lossless=True), 24, (24, 24))
    add("webp_lossy", "webp_lossy.webp", write(synth(40, 30, 11), "webp_lossy.webp", quality=80), 24, (24, 24))
    add("webp_alpha", "webp_alpha.webp", write(synth(36, 28, 14, "RGBA"), "webp_alpha.webp", lossless=True), 24, (24, 24))
    # the sample photos (in $TESSERA_DATA, not copied): CLIP 224, a JPEG at 112, LLaVA padding
    photos = os.path.join(DATA, "images")
    add("photo_chelsea_224", "DATA:images/chelsea.png", Image.open(os.path.join(photos, "chelsea.png")), 224, (224, 224),
        store_decoded=False)
    add("photo_rocket_112", "DATA:images/rocket.jpg", Image.open(os.path.join(photos, "rocket.jpg")), 112, (112, 112),
        store_decoded=False)
    add("photo_coffee_pad_64", "DATA:images/coffee.png", Image.open(os.path.join(photos, "coffee.png")), 64, (64, 64),
        pad=True, store_decoded=False)
    return cases


# ---------------------------------------------------------------------------- the captioner

IMAGE_TOKEN = 300


def make_llava():
    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                              image_size=30, patch_size=6, projection_dim=16, layer_norm_eps=1e-5)
    text = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=320, max_position_embeddings=256, rms_norm_eps=1e-5,
                       bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                      vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
                      tie_word_embeddings=False)
    model = LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():   # random init leaves some parameters at 0/1: make every weight count
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias") or "norm" in name:
                p.copy_(0.1 * torch.randn_like(p))
            elif "embedding" in name or "embed" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / np.sqrt(p.shape[-1] if p.ndim > 1 else 1))
    return model


def text_model_of(model):
    """The LLaVA's language model as a LlamaForCausalLM (for the GGUF writer)."""
    lm = LlamaForCausalLM(model.config.text_config).eval()
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("model.language_model."):
            sd["model." + k[len("model.language_model."):]] = v
        elif k == "lm_head.weight":
            sd[k] = v
    lm.load_state_dict(sd, strict=True)
    return lm


def write_mmproj(path, model, pre):
    """llama.cpp's legacy convert_image_encoder_to_gguf.py layout for a LLaVA-1.5 projector."""
    vc = model.config.vision_config
    w = gguf.GGUFWriter(path, "clip")
    w.add_bool("clip.has_text_encoder", False)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_llava_projector", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.image_size", vc.image_size)
    w.add_uint32("clip.vision.patch_size", vc.patch_size)
    w.add_uint32("clip.vision.embedding_length", vc.hidden_size)
    w.add_uint32("clip.vision.feed_forward_length", vc.intermediate_size)
    w.add_uint32("clip.vision.projection_dim", vc.projection_dim)
    w.add_uint32("clip.vision.attention.head_count", vc.num_attention_heads)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", vc.layer_norm_eps)
    w.add_uint32("clip.vision.block_count", vc.num_hidden_layers - 1)   # the layers LLaVA uses
    w.add_array("clip.vision.image_mean", pre.image_mean)
    w.add_array("clip.vision.image_std", pre.image_std)
    w.add_bool("clip.use_gelu", False)
    sd = model.state_dict()
    vp = "model.vision_tower."   # in memory (transformers 5); files: vision_tower[.vision_model].
    f32 = lambda t: t.detach().float().numpy()
    f16 = lambda t: t.detach().numpy().astype(np.float16)
    # llama.cpp keeps the patch embedding and position embedding in F16, 1-D tensors in F32
    w.add_tensor("v.class_embd", f32(sd[vp + "embeddings.class_embedding"]))
    w.add_tensor("v.patch_embd.weight", f16(sd[vp + "embeddings.patch_embedding.weight"]))
    w.add_tensor("v.position_embd.weight", f16(sd[vp + "embeddings.position_embedding.weight"]))
    w.add_tensor("v.pre_ln.weight", f32(sd[vp + "pre_layrnorm.weight"]))
    w.add_tensor("v.pre_ln.bias", f32(sd[vp + "pre_layrnorm.bias"]))
    names = {"layer_norm1": "ln1", "layer_norm2": "ln2", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out",
             "mlp.fc1": "ffn_down", "mlp.fc2": "ffn_up"}   # sic: the legacy script's swapped names
    for l in range(vc.num_hidden_layers - 1):
        for hf, gg in names.items():
            for kind in ("weight", "bias"):
                t = sd[f"{vp}encoder.layers.{l}.{hf}.{kind}"]
                w.add_tensor(f"v.blk.{l}.{gg}.{kind}", f16(t) if t.ndim == 2 else f32(t))
    for i, j in ((0, 1), (2, 2)):
        w.add_tensor(f"mm.{i}.weight", f16(sd[f"model.multi_modal_projector.linear_{j}.weight"]))
        w.add_tensor(f"mm.{i}.bias", f32(sd[f"model.multi_modal_projector.linear_{j}.bias"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CORPUS = """A photo of a cat sitting on a wooden table next to a cup of coffee. The background is a
kitchen with white walls and a window. A rocket launches into a blue sky, leaving a trail of white
smoke. An astronaut in a white suit stands in front of an American flag. Describe this image in
detail: the main subject, its surroundings and background, any text in the image, the style and
the colours. Write a short caption for this image: one sentence that names its main subject.
USER: ASSISTANT: The image shows a small orange and white cat with green eyes looking at the camera.
"""


def make_tokenizer():
    """A byte-level BPE of exactly 300 pieces (<unk> <s> </s>, bytes, merges) + <image> = 300,
    trained here on a few sentences: the tiny model's vocabulary is 320."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS] * 4, trainer)
    assert tok.get_vocab_size() == 300, tok.get_vocab_size()
    tok.add_special_tokens(["<image>"])
    assert tok.token_to_id("<image>") == IMAGE_TOKEN
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


CLI_PROMPT = "USER: <image>\nDescribe this image. ASSISTANT:"


def captioner():
    model = make_llava()
    folder = os.path.join(OUT, "llava_tiny")
    model.save_pretrained(folder, safe_serialization=True)
    pre = CLIPImageProcessorPil(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30},
                                image_mean=MEAN, image_std=STD)
    pre.save_pretrained(folder)
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(folder)
    # end to end as transformers' LlavaProcessor runs it: prompt text + image -> caption ids
    from transformers import LlavaProcessor
    processor = LlavaProcessor(image_processor=pre, tokenizer=tokenizer, patch_size=6,
                               vision_feature_select_strategy="default", image_token="<image>",
                               num_additional_image_tokens=1)
    inputs = processor(images=Image.open(os.path.join(OUT, "png_down.png")), text=CLI_PROMPT, return_tensors="pt")
    with torch.no_grad():
        cli_gen = model.generate(**inputs, max_new_tokens=10, do_sample=False, eos_token_id=2, pad_token_id=0)
    cli = {"prompt": CLI_PROMPT, "image": "png_down.png", "prompt_ids": [int(i) for i in inputs["input_ids"][0]],
           "greedy": [int(i) for i in cli_gen[0, inputs["input_ids"].shape[1]:]]}
    n_img = (30 // 6) ** 2
    image = Image.open(os.path.join(OUT, "png_down.png"))
    pixel_values = torch.from_numpy(pre(image, return_tensors="np")["pixel_values"])
    save_npy("llava_pixels.npy", pixel_values[0].numpy().astype(np.float32))
    rng = np.random.default_rng(7)
    before = [1] + list(rng.integers(3, 290, 5))
    after = list(rng.integers(3, 290, 4))
    ids = before + [IMAGE_TOKEN] * n_img + after
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        feats = model.get_image_features(pixel_values=pixel_values)
        feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
        feats = torch.cat(list(feats), 0) if isinstance(feats, (list, tuple)) else feats
        logits = model(input_ids=input_ids, pixel_values=pixel_values).logits[0]
        gen = model.generate(input_ids=input_ids, pixel_values=pixel_values, max_new_tokens=12, do_sample=False,
                             eos_token_id=2, pad_token_id=0)[0, len(ids):]
    save_npy("llava_features.npy", feats.reshape(-1, feats.shape[-1]).numpy().astype(np.float32))
    save_npy("llava_logits.npy", logits.numpy().astype(np.float32))
    # the GGUF pair: mmproj weights are F16 in the file, so its expected features come from
    # the model with those weights rounded the same way
    write_gguf(os.path.join(OUT, "llava_tiny_llm.gguf"), "llama", text_model_of(model), gguf.GGMLQuantizationType.F32)
    write_mmproj(os.path.join(OUT, "llava_tiny_mmproj.gguf"), model, pre)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and ("vision_tower" in name or "multi_modal_projector" in name) and "class_embedding" not in name:
                p.copy_(p.half().float())
        g_feats = model.get_image_features(pixel_values=pixel_values)
        g_feats = g_feats.pooler_output if hasattr(g_feats, "pooler_output") else g_feats
        g_feats = torch.cat(list(g_feats), 0) if isinstance(g_feats, (list, tuple)) else g_feats
        g_logits = model(input_ids=input_ids, pixel_values=pixel_values).logits[0]
        g_gen = model.generate(input_ids=input_ids, pixel_values=pixel_values, max_new_tokens=12, do_sample=False,
                               eos_token_id=2, pad_token_id=0)[0, len(ids):]
    save_npy("llava_gguf_features.npy", g_feats.reshape(-1, g_feats.shape[-1]).numpy().astype(np.float32))
    save_npy("llava_gguf_logits.npy", g_logits.numpy().astype(np.float32))
    return {"input_ids": [int(i) for i in ids], "image_tokens": n_img, "image_token_id": IMAGE_TOKEN,
            "greedy": [int(i) for i in gen], "gguf_greedy": [int(i) for i in g_gen], "eos_id": 2, "cli": cli}


def resample_cases():
    """Image.resize(BICUBIC) alone, many output sizes (both pass orders of Pillow 13, up and
    down, one axis only), as sha256 of the RGB bytes."""
    rng = np.random.default_rng(21)
    out = []
    for file in ("png_down.png", "png_tall.png"):
        im = Image.open(os.path.join(OUT, file)).convert("RGB")
        w, h = im.size
        sizes = [(w, h // 3), (w // 3, h), (w + 7, h // 2), (w // 2, h * 2), (w - 1, h - 5), (w * 2, h * 3)]
        sizes += [tuple(int(v) for v in rng.integers(3, 2 * max(w, h), 2)) for _ in range(24)]
        for ow, oh in sizes:
            r = np.asarray(im.resize((ow, oh), Image.BICUBIC))
            out.append({"file": file, "width": ow, "height": oh, "sha256": hashlib.sha256(r.tobytes()).hexdigest()})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = preprocess_cases()
    resamples = resample_cases()
    llava = captioner()
    meta = {"pillow": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"),
            "webp": features.version("webp"), "cases": cases, "resample": resamples, "llava": llava}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(llava))


if __name__ == "__main__":
    main()
