#!/usr/bin/env python3
"""Config files exactly as diffusers writes them, for the config readers' tests.

DPMSolverMultistepScheduler's config holds "lambda_min_clipped": -Infinity (Python's json
module writes non-standard constants), as many published checkpoints' scheduler_config.json
do. Run: python3 tools/gen_config_fixtures.py
"""
import os
import tempfile

from diffusers import DPMSolverMultistepScheduler

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "samplers")
with tempfile.TemporaryDirectory() as d:
    DPMSolverMultistepScheduler(use_karras_sigmas=True).save_config(d)
    text = open(os.path.join(d, "scheduler_config.json")).read()
assert "-Infinity" in text, text
open(os.path.join(OUT, "dpm_scheduler_config_diffusers.json"), "w").write(text)
print(text)
