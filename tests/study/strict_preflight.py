"""A test plugin (`-p tests.study.strict_preflight`): a machine rule that refuses every B=64
cell, so a test can show that only the selected cells are preflighted."""

import measure.plugin.hooks
from common.errors import CellSpecError

_original = measure.plugin.hooks.preflight


def _refuse_b64(cell, device_type, requested_backend="auto"):
    if cell.B == 64:
        raise CellSpecError(f"{cell.name}: planted machine rule: B=64 cannot run here")
    return _original(cell, device_type, requested_backend)


measure.plugin.hooks.preflight = _refuse_b64
