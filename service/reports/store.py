"""The API's artifact store: the shared object store (service/contract/objects.py) read from the event loop.

Explain workers write one JSON object per neuron (`contract.report_key`; layout in
service/contract/artifact_keys.py); the API reads them, the exemplar images and the prompt profiles through
this store, with fsspec only (no torch, numpy or worker code). Which reports a layer has is the listing's
business (service/reports/listing.py, the one reader of the Redis report index).
"""

from __future__ import annotations

import anyio.to_thread

from service.contract.objects import ObjectStore


class ReportStore(ObjectStore):
    """The objects under the artifact-store URL (a local folder or any fsspec URL), as the API reads them."""

    async def read_async(self, key: str) -> bytes | None:
        """`read` from the event loop: a local file (13 KB, usually in the page cache) is read in place,
        which costs less than a thread hop; a remote store is read on a worker thread."""
        if self.is_local:
            return self.read(key)
        return await anyio.to_thread.run_sync(self.read, key)
