"""moto's server, with S3's conditional writes made atomic and Glue's listings paged, as
the services document them.

moto checks If-None-Match and then stores the object, with nothing between the two: two
puts racing for one key can both succeed, which S3 never allows. fengine's leases rest on
that guarantee, so the tests' server serialises PutObject.

moto returns every table of GetTables and every partition of GetPartitions at once, where
Glue returns pages and a NextToken; here they come in pages of MaxResults, at most
GLUE_PAGE_SIZE (100 unless the environment says), so that readers' paging runs. moto also
ignores GetPartitions' ExcludeColumnSchema, which Glue honours by leaving each partition's
columns out; here they are left out.

Arguments go to moto.server.
"""

import os
import sys
import threading

import moto.glue.responses
import moto.s3.responses
import moto.server

_put_object = moto.s3.responses.S3Response.put_object
_lock = threading.Lock()


def _atomic_put_object(self):
    with _lock:
        return _put_object(self)


moto.s3.responses.S3Response.put_object = _atomic_put_object

_PAGE_SIZE = int(os.environ.get("GLUE_PAGE_SIZE", "100"))


def _without_columns(partition):
    descriptor = dict(partition.get("StorageDescriptor") or {})
    descriptor.pop("Columns", None)
    return {**partition, "StorageDescriptor": descriptor}


def _paged(listing, key):
    """A Glue listing that returns one page of `key` and the token of the next."""

    def paged(self):
        result = listing(self)
        items = result.result[key]
        start = int(self.parameters.get("NextToken") or 0)
        size = min(int(self.parameters.get("MaxResults") or _PAGE_SIZE), _PAGE_SIZE)
        page = {key: items[start : start + size]}
        if self.parameters.get("ExcludeColumnSchema"):
            page[key] = [_without_columns(item) for item in page[key]]
        if start + size < len(items):
            page["NextToken"] = str(start + size)
        return moto.glue.responses.ActionResult(page)

    return paged


moto.glue.responses.GlueResponse.get_tables = _paged(
    moto.glue.responses.GlueResponse.get_tables, "TableList"
)
moto.glue.responses.GlueResponse.get_partitions = _paged(
    moto.glue.responses.GlueResponse.get_partitions, "Partitions"
)

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
