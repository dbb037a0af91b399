"""python -m guardalloc demo"""

import guardalloc
from guardalloc.cli import main


def test_demo_shows_both_backends_and_the_caught_overflow(capsys):
    assert main(["demo", "--slots", "2000"]) == 0
    out = capsys.readouterr().out
    assert "mprotect" in out and "4,001" in out          # 2 VMAs per mprotect guard
    if guardalloc.support().anonymous:
        assert "madvise guards built" in out
    assert "died with SIGSEGV" in out
