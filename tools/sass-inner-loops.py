#!/usr/bin/env python3
"""Instructions per FFMA in a kernel's innermost loops, from the SASS ptxas makes (no GPU needed).

Usage: flowhn ptx-report --ptx-dir DIR ...; ptxas -arch=sm_90 DIR/Kernel_X.ptx -o X.cubin; tools/sass-inner-loops.py X.cubin
An innermost loop is the range [target, branch] of a backward branch holding no other backward branch; per loop
it prints the instructions (NOPs excluded), the FFMAs and the shared (LDS) and global (LDG) loads.
Needs cuobjdump (Debian's nvidia-cuda-toolkit, as ptxas).
"""
import re
import subprocess
import sys

for path in sys.argv[1:]:
    sass = subprocess.run(["cuobjdump", "-sass", path], capture_output=True, text=True, check=True).stdout
    code = []
    for line in sass.splitlines():
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            code.append((int(m.group(1), 16), m.group(2).strip()))
    back = []
    for at, text in code:
        m = re.search(r"BRA\s+.*?0x([0-9a-f]+)", text)
        if m and int(m.group(1), 16) <= at:
            back.append((int(m.group(1), 16), at))
    inner = [(s, e) for s, e in back if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in back)]
    print(f"== {path}")
    for start, end in sorted(inner):
        body = [t for a, t in code if start <= a <= end and not t.startswith("NOP")]
        ffma = sum(1 for t in body if re.search(r"\bFFMA\b", t))
        if not ffma:
            continue
        lds = sum(1 for t in body if re.search(r"\bLDS\b", t))
        ldg = sum(1 for t in body if re.search(r"\bLDG\b", t))
        print(f"  loop 0x{start:x}-0x{end:x}: {len(body)} instructions, {ffma} FFMA -> {len(body) / ffma:.1f} per FFMA; LDS {lds}, LDG {ldg}")
