#!/usr/bin/env python3
"""Chat-template fixtures: conversations rendered by the families' Jinja templates through
transformers' apply_chat_template (jinja2), never by Tessera.

The templates are the ones the families publish in tokenizer_config.json (ChatML for Qwen2 /
SmolLM, Llama 3, Llama 2, Mistral v0.1). Mistral's template has no system role; like most
servers we fold the system text into the first user turn, and do the same here before
rendering. Run: python3 tools/gen_chat_fixtures.py
"""
import json
import os

from transformers.utils.chat_template_utils import render_jinja_template

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "chat")
os.makedirs(OUT, exist_ok=True)

TEMPLATES = {
    "chatml": ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
               "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
               "", ""),
    "llama3": ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
               "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
               "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
               "{{ content }}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
               "<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
               "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
               "{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}"
               "{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}"
               "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
               "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
               "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
               "<s>", "</s>"),
    "mistral": ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                "{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
                "<s>", "</s>"),
}

CONVERSATIONS = [
    [{"role": "user", "content": "a cat wearing armor"}],
    [{"role": "system", "content": "You rewrite prompts."}, {"role": "user", "content": "a red circle"}],
    [{"role": "system", "content": "Describe images.\nBe vivid."},
     {"role": "user", "content": "a dog"}, {"role": "assistant", "content": "A golden retriever in a sunlit park."},
     {"role": "user", "content": "  a city at night  "}],
]


def fold_system(messages):
    if messages[0]["role"] != "system":
        return messages
    rest = [dict(m) for m in messages[1:]]
    rest[0]["content"] = messages[0]["content"] + "\n\n" + rest[0]["content"]
    return rest


cases = []
for name, (template, bos, eos) in TEMPLATES.items():
    for conv in CONVERSATIONS:
        msgs = fold_system(conv) if name == "mistral" else conv
        for gen in (True, False):
            text, _ = render_jinja_template(conversations=[msgs], chat_template=template,
                                            add_generation_prompt=gen, bos_token=bos, eos_token=eos)
            cases.append({"template": name, "messages": conv, "add_generation_prompt": gen, "text": text[0]})
with open(os.path.join(OUT, "templates.json"), "w", encoding="utf-8") as f:
    json.dump({"templates": {k: v[0] for k, v in TEMPLATES.items()}, "cases": cases}, f, ensure_ascii=False, indent=1)
print(len(cases), "cases")
