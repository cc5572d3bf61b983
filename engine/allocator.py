"""Arrow's memory allocator, set up before pyarrow loads: mimalloc without transparent huge pages.

pyarrow allocates its buffers with mimalloc, which by default asks the kernel for transparent huge pages
(THP, 2 MB at a time) wherever the kernel allows them. An evaluation allocates and frees hundreds of MB
of columns and temporaries a second, and each fresh huge page costs the kernel a compaction to find 2 MB
in one piece and the zeroing of all of it at once. On the 2-core VM of ``bench/`` that was a third of an
evaluation's CPU time: with THP off, the kernel time of a whole evaluation fell by half (retail 10M:
0.66 → 0.33 s; crm 10M 1.18 → 0.48 s) and the wall time by 10-30 %, with the same peak memory and less
spread from run to run (bench/README.md, *Huge pages*). Small pages cost more page faults, each far
cheaper.

mimalloc reads its options once, when pyarrow's library loads: `configure` (run when metrictree is
imported) only has an effect when pyarrow is not loaded yet — as for the ``metrictree`` command, and for
a program that imports metrictree before pyarrow. A value already in the environment is kept, so
``MIMALLOC_ALLOW_THP=1`` keeps the huge pages. The setting is inherited by child processes, where it
means the same to any mimalloc they load.
"""

from __future__ import annotations

import os
import sys

OPTION = "MIMALLOC_ALLOW_THP"


def configure() -> bool:
    """Turn mimalloc's huge pages off for this process, unless the environment says otherwise or pyarrow is
    already loaded (too late: mimalloc has read its options). Returns whether the option was set here."""
    if "pyarrow" in sys.modules or OPTION in os.environ:
        return False
    os.environ[OPTION] = "0"
    return True
