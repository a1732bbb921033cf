"""Put-if-absent on S3: a conditional PUT (``If-None-Match: *``) sent through boto3.

``pyarrow.fs.S3FileSystem`` writes every object of an S3 store (packs, indexes, leases)
but cannot send a conditional PUT, and the store's put-if-absent writes (registry
commits, dataset version records, metric segments, checkpoints, the store's config)
need one: two writers that both find number 42 free must not both be told they wrote
it. So those writes, and only those, go through boto3 (the ``s3`` extra:
``pip install 'mlops-engine[s3]'``) as ``PutObject`` with ``If-None-Match: *``. S3
answers 412 Precondition Failed when the key exists, atomically with respect to every
other writer; that is what :meth:`ConditionalPut.put` turns into ``False``.

The client is configured from the same place as pyarrow's: the options of the
``S3FileSystem`` itself (``endpoint_override``, ``scheme``, ``region``, explicit keys,
``anonymous``, timeouts, proxy, CA file), which the store URI's query sets
(``s3://bucket/prefix?endpoint_override=host:port&scheme=http&region=us-east-1``);
what is left unset comes from boto3's own chain, which reads the same ``AWS_*``
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``) and ``~/.aws`` files as
the AWS SDK under pyarrow.

A server that ignores ``If-None-Match`` would turn every put-if-absent into a silent
overwrite. So before its first conditional write to a bucket, a process probes it:
it writes a scratch object under ``<store>/tmp/`` twice with ``If-None-Match: *`` and
requires the second write to be refused, then deletes the object. A server that
accepts the second write or rejects the header (501 NotImplemented, 400
InvalidArgument), and an environment without boto3, get
:class:`ConditionalWriteUnsupported` on every put-if-absent: the store refuses
instead of racing. See docs/object-storage.md.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

from .errors import StoreError

#: The words every refusal starts with (docs/object-storage.md quotes them).
REFUSAL = ("this object store does not support conditional writes (If-None-Match); "
           "registry commits need them")
#: Scratch objects of the probe, under the store root (gc removes what a crash leaves).
PROBE_PREFIX = "tmp/.conditional-write-probe-"
#: Tries of a PUT that S3 answers 409 ConditionalRequestConflict (a conditional write
#: of the same key in flight); each waits a little longer.
CONFLICT_TRIES = 8


class ConditionalWriteUnsupported(StoreError):
    """The store's object storage cannot do put-if-absent (no conditional writes, or
    no boto3 to send them): registry commits and version records would race."""


def refusal(why: str) -> ConditionalWriteUnsupported:
    return ConditionalWriteUnsupported(f"{REFUSAL}: {why}. See docs/object-storage.md")


def s3_options(filesystem) -> dict:
    """The options of a ``pyarrow.fs.S3FileSystem`` (as built from a URI or by hand)."""
    try:
        _rebuild, (opts,) = filesystem.__reduce__()
    except (TypeError, ValueError):
        raise TypeError(f"cannot read the options of {filesystem!r}") from None
    return dict(opts)


def client_kwargs(opts: dict) -> dict:
    """``boto3.client("s3", **kwargs)`` for the S3FileSystem options ``opts``."""
    from botocore import UNSIGNED
    from botocore.config import Config

    kw: dict = {}
    endpoint = opts.get("endpoint_override") or ""
    if endpoint:
        kw["endpoint_url"] = endpoint if "://" in endpoint else f"{opts.get('scheme') or 'https'}://{endpoint}"
    if opts.get("region"):
        kw["region_name"] = opts["region"]
    if opts.get("access_key"):
        kw["aws_access_key_id"] = opts["access_key"]
        kw["aws_secret_access_key"] = opts.get("secret_key") or ""
        if opts.get("session_token"):
            kw["aws_session_token"] = opts["session_token"]
    if opts.get("role_arn"):
        raise refusal(f"the store's S3 options assume role {opts['role_arn']!r}, which the "
                      "conditional-write client does not do; give credentials through "
                      "AWS_* variables or ~/.aws instead")
    if opts.get("tls_ca_file_path"):
        kw["verify"] = opts["tls_ca_file_path"]
    # pyarrow addresses buckets by path when given an endpoint, unless told otherwise
    style = ("virtual" if opts.get("force_virtual_addressing")
             else "path" if endpoint else "auto")
    cfg: dict = {"s3": {"addressing_style": style},
                 "retries": {"mode": "standard", "max_attempts": 5}}
    if opts.get("anonymous"):
        cfg["signature_version"] = UNSIGNED
    for ours, theirs in (("connect_timeout", "connect_timeout"), ("request_timeout", "read_timeout")):
        if (opts.get(ours) or -1) > 0:
            cfg[theirs] = opts[ours]
    proxy = opts.get("proxy_options") or {}
    if proxy.get("host"):
        auth = (f"{proxy['username']}:{proxy.get('password', '')}@"
                if proxy.get("username") else "")
        port = f":{proxy['port']}" if (proxy.get("port") or -1) > 0 else ""
        url = f"{proxy.get('scheme') or 'http'}://{auth}{proxy['host']}{port}"
        cfg["proxies"] = {"http": url, "https": url}
    # S3-compatible servers vary in the checksums they accept; PutObject needs none
    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        cfg["request_checksum_calculation"] = "when_required"
        cfg["response_checksum_validation"] = "when_required"
    kw["config"] = Config(**cfg)
    return kw


#: (endpoint, bucket) -> None (conditional writes work) or the refusal's reason
_probed: dict[tuple, str | None] = {}
_probed_lock = threading.Lock()


def _code(exc) -> tuple[str, int]:
    err = exc.response.get("Error", {})
    return str(err.get("Code", "")), int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class ConditionalPut:
    """Put-if-absent of whole objects into the bucket of an S3 store.

    ``root`` is the store's ``bucket/prefix`` as pyarrow names it; keys are full
    pyarrow paths (``bucket/prefix/registry/log/...``). Safe to use from several
    threads; a process that forks gets a client of its own.
    """

    def __init__(self, filesystem, root: str):
        self.opts = s3_options(filesystem)
        self.root = root.strip("/")
        self.bucket = self.root.split("/", 1)[0]
        self._client = None
        self._pid = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ client
    def client(self):
        """The boto3 S3 client (made on first use; again after a fork)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                try:
                    import boto3
                except ImportError:
                    raise refusal("boto3 is not installed, and pyarrow.fs cannot send a "
                                  "conditional PUT; install the s3 extra: "
                                  "pip install 'mlops-engine[s3]'") from None
                self._client = boto3.session.Session().client("s3", **client_kwargs(self.opts))
                self._pid = os.getpid()
            return self._client

    def _where(self) -> tuple:
        return (self.client().meta.endpoint_url, self.bucket)

    # ------------------------------------------------------------------ probe
    def check(self) -> None:
        """Probe the bucket once per process; raise the refusal where it cannot do it."""
        where = self._where()
        with _probed_lock:
            if where not in _probed:
                _probed[where] = self._probe()
            why = _probed[where]
        if why is not None:
            raise refusal(why)

    def _probe(self) -> str | None:
        from botocore.exceptions import ClientError

        c = self.client()
        key = self._key(f"{self.root}/{PROBE_PREFIX}{uuid.uuid4().hex}")
        endpoint = c.meta.endpoint_url
        try:
            for attempt in (1, 2):
                try:
                    c.put_object(Bucket=self.bucket, Key=key, Body=b"probe", IfNoneMatch="*")
                except ClientError as exc:
                    code, status = _code(exc)
                    if attempt == 2 and (status == 412 or code == "PreconditionFailed"):
                        return None  # refused the second write: conditional writes work
                    if status == 501 or code in ("NotImplemented", "InvalidArgument",
                                                 "InvalidRequest"):
                        return (f"the server at {endpoint} rejects a PUT with If-None-Match "
                                f"({code or status}: {exc.response.get('Error', {}).get('Message', '')})")
                    raise _os_error(exc, self.bucket, key) from None
            return (f"the server at {endpoint} accepted a second PUT of {self.bucket}/{key} "
                    "with If-None-Match: * instead of refusing it (it ignores the header)")
        finally:
            try:
                c.delete_object(Bucket=self.bucket, Key=key)
            except ClientError:
                pass

    # ------------------------------------------------------------------ put
    def _key(self, path: str) -> str:
        bucket, _, key = path.strip("/").partition("/")
        if bucket != self.bucket or not key:
            raise ValueError(f"{path!r} is not a key in bucket {self.bucket!r}")
        return key

    def put(self, path: str, data: bytes) -> bool:
        """Create object ``path`` (``bucket/key``) holding ``data`` only if it does not
        exist; True if this call created it, False if it existed (nothing changed)."""
        from botocore.exceptions import ClientError

        self.check()
        key = self._key(path)
        c = self.client()
        retried = False
        for attempt in range(CONFLICT_TRIES):
            try:
                c.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                code, status = _code(exc)
                retried = retried or exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
                if status == 412 or code == "PreconditionFailed":
                    # A retried PUT (botocore retries a lost response, or a 409 here) can
                    # be refused because its own earlier attempt landed: ours if the bytes are.
                    return retried and self._holds(key, data)
                if status == 409 or code == "ConditionalRequestConflict":
                    # another conditional write of this key is in flight: S3 says try again
                    retried = True
                    time.sleep(0.02 * (2 ** attempt) * (0.5 + random.random()))
                    continue
                if status == 501 or code == "NotImplemented":
                    raise refusal(f"the server at {c.meta.endpoint_url} answered "
                                  f"{code or status} to a conditional PUT of {self.bucket}/{key}") from None
                raise _os_error(exc, self.bucket, key) from None
        raise OSError(f"S3 kept answering 409 ConditionalRequestConflict to the conditional PUT "
                      f"of {self.bucket}/{key} ({CONFLICT_TRIES} tries): another writer keeps "
                      "writing that key")

    def _holds(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            got = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError:
            return False
        return got == data


def _os_error(exc, bucket: str, key: str) -> OSError:
    code, status = _code(exc)
    msg = (f"S3 request for {bucket}/{key} failed: {code or status} "
           f"{exc.response.get('Error', {}).get('Message', '')}").rstrip()
    if status == 403:
        return PermissionError(msg)
    if code == "NoSuchBucket":
        return FileNotFoundError(msg)
    return OSError(msg)
