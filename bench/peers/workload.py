"""The fixed allocation-heavy CPython workload of the peer comparison:
dicts, strings, json, re and (when numpy is installed) small arrays."""

import json
import re


def main(scale: int = 1) -> int:
    total = 0
    for round_number in range(4 * scale):
        table = {f"key-{i}": [i, str(i) * 3, {"n": i}] for i in range(20000)}
        text = json.dumps(table)
        back = json.loads(text)
        total += len(back) + len(text)
        words = re.findall(r"key-(\d+)", text)
        total += sum(len(w) for w in words[:5000])
        parts = "-".join(str(i) for i in range(30000)).split("-")
        total += len(parts)
    try:
        import numpy as np
    except ImportError:
        return total
    for i in range(20000 * scale):
        a = np.arange(i % 64 + 1, dtype=np.float64)
        total += int((a * 2).sum())
    return total


if __name__ == "__main__":
    print(main())
