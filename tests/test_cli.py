"""python -m guardalloc demo"""

import guardalloc
from guardalloc.cli import main


def test_demo_shows_both_backends_and_the_caught_overflow(capsys):
    assert main(["demo", "--slots", "2000"]) == 0
    out = capsys.readouterr().out
    # 2 VMAs per mprotect guard (+1 when the bookkeeping merges with no neighbour)
    assert "mprotect" in out and ("4,001" in out or "4,002" in out)
    if guardalloc.support().anonymous:
        assert "madvise guards built" in out
    assert "died with SIGSEGV" in out
