"""moto's server, with S3's conditional writes made atomic as S3 documents them.

moto checks If-None-Match and then stores the object, with nothing between the two: two
puts racing for one key can both succeed, which S3 never allows. fengine's leases rest on
that guarantee, so the tests' server serialises PutObject. Arguments go to moto.server.
"""

import sys
import threading

import moto.s3.responses
import moto.server

_put_object = moto.s3.responses.S3Response.put_object
_lock = threading.Lock()


def _atomic_put_object(self):
    with _lock:
        return _put_object(self)


moto.s3.responses.S3Response.put_object = _atomic_put_object

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
