#!/usr/bin/env python3
"""A tiny chat model for the expander and serve-llm tests, with transformers' reference reply.

tests/fixtures/expander_tiny/ is a Hugging Face folder: a random-weight Qwen2ForCausalLM whose
vocabulary is the tiny Qwen2-style BPE of tests/fixtures/llm_tokenizer (tokenizer.json), and a
ChatML chat_template in tokenizer_config.json. system.txt and examples.txt define the
upsampling conversation (passed to Tessera with --system/--examples), and reference.json holds
transformers' greedy reply (20 new tokens) to it for two prompts.
Run: python3 tools/gen_expander_fixture.py   (after tools/gen_llm_tokenizer_fixtures.py)
"""
import json
import os
import shutil

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

torch.manual_seed(11)
torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "tests", "fixtures")
OUT = os.path.join(FIX, "expander_tiny")
os.makedirs(OUT, exist_ok=True)

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

shutil.copy(os.path.join(FIX, "llm_tokenizer", "qwen2-tokenizer.json"), os.path.join(OUT, "tokenizer.json"))
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHATML,
               "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, f, indent=1)
tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(OUT, "tokenizer.json"))

cfg = Qwen2Config(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=1024,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                  initializer_range=0.5)  # large weights: varied, discriminating replies
model = Qwen2ForCausalLM(cfg).eval()
model.save_pretrained(OUT, safe_serialization=True)

system = "Describe the picture in detail."
examples = [("a dog", "A brown dog running on a sunny beach with waves behind it.")]
with open(os.path.join(OUT, "system.txt"), "w") as f:
    f.write(system + "\n")
with open(os.path.join(OUT, "examples.txt"), "w") as f:
    for s, d in examples:
        f.write(f"{s}\t{d}\n")

end_ids = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
cases = []
for prompt in ["a red circle", "a cat wearing armor"]:
    messages = [{"role": "system", "content": system}]
    for s, d in examples:
        messages += [{"role": "user", "content": s}, {"role": "assistant", "content": d}]
    messages.append({"role": "user", "content": prompt})
    text = tok.apply_chat_template(messages, chat_template=CHATML, tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=20, do_sample=False, eos_token_id=end_ids, pad_token_id=end_ids[1])
    new = out[0, ids.shape[1]:].tolist()
    cases.append({"prompt": prompt, "prompt_ids": ids[0].tolist(), "reply_ids": new,
                  "reply": tok.decode(new, skip_special_tokens=True)})
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(cases, f, ensure_ascii=False, indent=1)
for f in sorted(os.listdir(OUT)):
    print(f, os.path.getsize(os.path.join(OUT, f)))
