"""stamina's retries, loaded on first use: a server start that only lists tools does not import it (~8 ms).

Every retry loop of parts-mcp (vendor calls, Keyloop's order polling, the approvals webhook) takes its
`retry_context` from here, so stamina is configured once, before its first retry.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stamina import retry_context as retry_context  # the same function, typed as stamina's own
else:

    def retry_context(**options: Any) -> Any:
        return _stamina().retry_context(**options)


@functools.cache
def _stamina() -> Any:
    import stamina
    import stamina.instrumentation

    # Our retry line (vendors.base) names the vendor, method, path and reason. stamina's own hooks would
    # add a bare `stamina.retry_scheduled` line and count into the global Prometheus registry nobody serves.
    stamina.instrumentation.set_on_retry_hooks(())
    return stamina
