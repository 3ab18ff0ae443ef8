#!/usr/bin/env python3
"""check_skips.py — fails a test run that skipped a test nobody expected to skip.

    check_skips.py JUNIT_XML [EXPECTED_SKIPS]

JUNIT_XML is what `ctest --output-junit` wrote; EXPECTED_SKIPS (default
tests/expected_skips.txt next to this script) lists the tests allowed to skip, one
per line as ctest names them ("parity/test_cuda_gemm"), then why; '#' starts a comment.
A test skips by exiting 77 (TEST_SKIP in tests/test.h, `exit 77` in a shell test).
Run by `make test` after each ctest run. Exit status: 0 when every skip was expected,
1 when one was not, 2 when the report is missing, unreadable or holds no test at all.
"""
import os
import sys
import xml.etree.ElementTree as ET


def expected_skips(path):
    allowed = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, why = line.partition(" ")
                allowed[name] = why.strip()
    return allowed


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    report = argv[1]
    expected = argv[2] if len(argv) == 3 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "expected_skips.txt")
    try:
        cases = list(ET.parse(report).getroot().iter("testcase"))
    except (OSError, ET.ParseError) as e:
        print(f"check_skips: cannot read the ctest report {report}: {e}", file=sys.stderr)
        return 2
    if not cases:
        print(f"check_skips: {report} holds no test: the run tested nothing", file=sys.stderr)
        return 2
    allowed = expected_skips(expected)
    unexpected = 0
    for case in cases:
        if case.find("skipped") is None:
            continue
        name = case.get("name")
        lines = (case.findtext("system-out") or "").strip().splitlines()
        said = [l for l in lines if "SKIP" in l] or lines[-1:] or ["(no reason printed)"]
        why = said[-1]
        if name in allowed:
            print(f"check_skips: {name} skipped, as expected ({allowed[name]}): {why}")
        else:
            print(f"check_skips: UNEXPECTED SKIP {name}: {why}", file=sys.stderr)
            unexpected += 1
    if unexpected:
        print(f"check_skips: {unexpected} test(s) skipped that {expected} does not list: "
              "make them run here, or list them with the reason", file=sys.stderr)
        return 1
    print(f"check_skips: {len(cases)} tests in {report}, no unexpected skip")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
