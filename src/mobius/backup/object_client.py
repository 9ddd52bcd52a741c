"""A small S3 client on the standard library, for the repository store at an S3-compatible endpoint.

Why: every command on an s3:// repository paid botocore's start-up before its first request: importing it
(~80 modules, 0.15-0.2 s of CPU warm, 0.3-0.45 s with the page cache dropped) and making a client (loading
the S3 model and endpoint rules: 0.06-0.12 s more), then ~3 ms of CPU per request (endpoint rules, events,
parsing). That was most of what a 2,000-file backup on S3 cost beyond the same backup into a folder, and what
kept it behind restic on the same server. This client speaks the nine operations the store sends (the REST API,
path-style, signed with AWS Signature Version 4) with http.client, hmac and hashlib, and answers in the shapes
botocore's client does (dicts with the same keys; errors with the same `.response`), so the store uses either.

It is used only where it is the same as botocore's client (`for_options` says when): an explicit endpoint
(`MOBIUS_S3_ENDPOINT_URL` / `AWS_ENDPOINT_URL*`: addressed path-style, which every S3-compatible server
accepts), credentials in the environment (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN],
the first link of botocore's chain, which wins whenever both are set), the region in AWS_DEFAULT_REGION or no
AWS config file (then us-east-1, as botocore signs), no proxy in the environment, and only the client settings
it honours (connect and read timeouts, attempts, pool size). Anything else (AWS itself without an endpoint:
its region redirects and virtual hosts; profiles, SSO, instance roles; proxies) goes through botocore as before.

Requests are retried as botocore's legacy mode does (connection errors, 500/502/503/504, throttling; up to
`max_attempts` in all, exponential backoff with jitter); a request body read from a file is sent again from its
start. A response body is streamed: the store reads packs in chunks, never whole.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import os
import random
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, unquote_plus, urlsplit

UNSIGNED = "UNSIGNED-PAYLOAD"
BLOCK = 1 << 20  # bytes of a file body per send()
RETRY_STATUS = frozenset({500, 502, 503, 504, 429})
RETRY_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                         "ServiceUnavailable", "RequestLimitExceeded"})
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SETTINGS = frozenset({"connect_timeout", "read_timeout", "retries", "max_pool_connections"})
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class S3Error(Exception):
    """An S3 error answer; `.response` as botocore's ClientError has it (Error.Code, ResponseMetadata.HTTPStatusCode),
    so the store reads both alike."""

    def __init__(self, operation: str, status: int, code: str, message: str = ""):
        self.response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
        super().__init__(f"An error occurred ({code}) when calling the {operation} operation: {message or status}")


class S3Unreachable(Exception):
    """The endpoint did not answer (connection refused or reset, timeout) after every attempt."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = ""
    token: str | None = None

    def __repr__(self) -> str:  # never the secret in a traceback or log
        return f"Credentials(access_key={self.access_key!r})"


def for_options(storage_options: Mapping[str, Any], environ: Mapping[str, str]) -> S3Client | None:
    """This client for these store options and environment, or None when botocore's client must answer (see the
    module's docstring for when)."""
    endpoint = storage_options.get("endpoint_url")
    config = dict(storage_options.get("config_kwargs") or {})
    retries = config.get("retries") or {}
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
        return None
    parts = urlsplit(endpoint)
    if not parts.hostname or parts.path.strip("/") or parts.query or parts.username:
        return None  # an endpoint with a path or user info: botocore's reading of it
    if set(config) - SETTINGS or set(retries) - {"max_attempts", "total_max_attempts"}:
        return None
    access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret or any(environ.get(name) for name in PROXIES):
        return None
    region = environ.get("AWS_DEFAULT_REGION")
    if not region:
        config_file = environ.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
        if os.path.exists(config_file):
            return None  # a region in a profile: botocore reads it
        region = "us-east-1"
    attempts = retries.get("total_max_attempts") or retries.get("max_attempts") or 5
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None
    return S3Client(endpoint, region, Credentials(access, secret, token),
                    connect_timeout=float(config.get("connect_timeout", 60)),
                    read_timeout=float(config.get("read_timeout", 60)), max_attempts=max(1, int(attempts)),
                    ca_bundle=environ.get("AWS_CA_BUNDLE") or None)


def sign(method: str, url: str, headers: dict[str, str], payload_hash: str, credentials: Credentials, region: str,
         when: datetime.datetime) -> dict[str, str]:
    """`headers` plus x-amz-date, x-amz-content-sha256 (`payload_hash`), the session token and the Signature
    Version 4 Authorization for service s3 (checked against botocore's signer in the tests). `url`'s path is
    URI-encoded already, as it is sent."""
    parts = urlsplit(url)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {**{k.lower(): v.strip() for k, v in headers.items()}, "host": _host(parts),
              "x-amz-date": stamp, "x-amz-content-sha256": payload_hash}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    query = sorted((unquote_plus(k), unquote_plus(v)) for k, _, v in
                   (item.partition("=") for item in parts.query.split("&") if item))
    canonical = "\n".join([
        method,
        parts.path or "/",  # already URI-encoded, as sent (S3 does not encode it twice)
        "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query),
        "".join(f"{name}:{signed[name]}\n" for name in names),
        ";".join(names),
        payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in signed.items() if k != "host"}
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


def _host(parts: Any) -> str:
    """The Host header: the port only when it is not the scheme's default (as clients send it and servers sign)."""
    port = parts.port
    host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
    if port is None or (parts.scheme, port) in (("http", 80), ("https", 443)):
        return host
    return f"{host}:{port}"


class StreamingBody:
    """A response body read in chunks (botocore's StreamingBody's `iter_chunks`, `read`, `close`); its connection
    goes back to the pool when it was read to the end, and is closed otherwise."""

    def __init__(self, client: S3Client, conn: http.client.HTTPConnection, response: http.client.HTTPResponse):
        self._client, self._conn, self._response = client, conn, response

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self._response.read(chunk_size):
            yield chunk
        self.close()

    def read(self) -> bytes:
        data = self._response.read()
        self.close()
        return data

    def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._response.isclosed() and not self._response.will_close:
            self._client._release(conn)
        else:
            conn.close()


class S3Client:
    """Path-style requests to one endpoint, signed with the given credentials; thread-safe (connections are taken
    from a pool, one per request in flight, and given back when the answer was read whole)."""

    def __init__(self, endpoint: str, region: str, credentials: Credentials, *, connect_timeout: float = 60,
                 read_timeout: float = 60, max_attempts: int = 5, ca_bundle: str | None = None):
        parts = urlsplit(endpoint)
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.region = region
        self.credentials = credentials
        self._scheme, self._hostname, self._port = parts.scheme, parts.hostname, parts.port
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self.max_attempts = max_attempts
        self._ca_bundle = ca_bundle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        _clients.add(self)

    def _forget_connections(self) -> None:
        """In a forked child: none of the parent's sockets (dropped, not closed: they are the parent's), a new lock."""
        self._idle = []
        self._lock = threading.Lock()

    # -- the operations (botocore's names, arguments and answers) -----------------------------------------
    def head_bucket(self, *, Bucket: str) -> dict:  # noqa: N803 - botocore's argument names
        self._call("HeadBucket", "HEAD", Bucket, "").read()
        return {}

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", Delimiter: str | None = None,  # noqa: N803
                        ContinuationToken: str | None = None, MaxKeys: int | None = None) -> dict:  # noqa: N803
        from xml.etree import ElementTree

        query = {"list-type": "2", "prefix": Prefix, "encoding-type": "url"}
        if Delimiter:
            query["delimiter"] = Delimiter
        if ContinuationToken:
            query["continuation-token"] = ContinuationToken
        if MaxKeys:
            query["max-keys"] = str(MaxKeys)
        root = ElementTree.fromstring(self._call("ListObjectsV2", "GET", Bucket, "", query).read())
        # keys come URL-encoded when the server says so (a server that ignores encoding-type sends them as they are)
        key = unquote_plus if root.findtext(f"{S3_NS}EncodingType") == "url" else str
        page: dict[str, Any] = {
            "Contents": [{"Key": key(item.findtext(f"{S3_NS}Key", "")),
                          "Size": int(item.findtext(f"{S3_NS}Size", "0"))} for item in root.iter(f"{S3_NS}Contents")],
            "CommonPrefixes": [{"Prefix": key(item.findtext(f"{S3_NS}Prefix", ""))}
                               for item in root.iter(f"{S3_NS}CommonPrefixes")],
            "IsTruncated": root.findtext(f"{S3_NS}IsTruncated", "false") == "true"}
        if page["IsTruncated"]:
            page["NextContinuationToken"] = root.findtext(f"{S3_NS}NextContinuationToken")
        return page

    def head_object(self, *, Bucket: str, Key: str) -> dict:  # noqa: N803
        body = self._call("HeadObject", "HEAD", Bucket, Key)
        length = int(body._response.getheader("Content-Length", "0"))
        body.read()
        return {"ContentLength": length}

    def get_object(self, *, Bucket: str, Key: str) -> dict:  # noqa: N803
        return {"Body": self._call("GetObject", "GET", Bucket, Key)}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes | IO[bytes]) -> dict:  # noqa: N803
        self._call("PutObject", "PUT", Bucket, Key, body=Body).read()
        return {}

    def delete_object(self, *, Bucket: str, Key: str) -> dict:  # noqa: N803
        self._call("DeleteObject", "DELETE", Bucket, Key).read()
        return {}

    def create_multipart_upload(self, *, Bucket: str, Key: str) -> dict:  # noqa: N803
        from xml.etree import ElementTree

        root = ElementTree.fromstring(self._call("CreateMultipartUpload", "POST", Bucket, Key, {"uploads": ""}).read())
        return {"UploadId": root.findtext(f"{S3_NS}UploadId")}

    def upload_part(self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes) -> dict:  # noqa: N803
        body = self._call("UploadPart", "PUT", Bucket, Key, {"partNumber": str(PartNumber), "uploadId": UploadId},
                          body=Body)
        etag = body._response.getheader("ETag")
        body.read()
        return {"ETag": etag}

    def complete_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str,  # noqa: N803
                                  MultipartUpload: dict) -> dict:  # noqa: N803
        from xml.sax.saxutils import escape

        parts = "".join(f"<Part><PartNumber>{int(p['PartNumber'])}</PartNumber><ETag>{escape(p['ETag'])}</ETag></Part>"
                        for p in MultipartUpload["Parts"])
        answer = self._call("CompleteMultipartUpload", "POST", Bucket, Key, {"uploadId": UploadId},
                            body=f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()).read()
        if b"<Error>" in answer:  # S3 may answer 200 and report the failure in the body
            raise S3Error("CompleteMultipartUpload", 500, "InternalError", answer[:200].decode(errors="replace"))
        return {}

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> dict:  # noqa: N803
        self._call("AbortMultipartUpload", "DELETE", Bucket, Key, {"uploadId": UploadId}).read()
        return {}

    # -- requests --------------------------------------------------------------------------------------
    def _call(self, operation: str, method: str, bucket: str, key: str, query: Mapping[str, str] | None = None,
              body: bytes | IO[bytes] | None = None) -> StreamingBody:
        """The answer of a 2xx status, its body unread; S3Error for an error answer, S3Unreachable when every
        attempt failed to connect or was cut off before the answer's status line."""
        path = f"/{bucket}/{key}" if key else f"/{bucket}"
        target = quote(path, safe="/~")
        if query:
            target += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query.items())
        if body is None or isinstance(body, bytes):
            payload = hashlib.sha256(body or b"").hexdigest()
            length = len(body or b"")
            start = None
        else:  # a file: sent as it is read (not read twice to hash it); its bytes are checked by reading them back
            payload = UNSIGNED
            start = body.tell()
            length = os.fstat(body.fileno()).st_size - start
        attempt = 0
        while True:
            attempt += 1
            headers = sign(method, self.endpoint + target, {}, payload, self.credentials, self.region,
                           datetime.datetime.now(datetime.UTC))
            if body is not None or method in ("PUT", "POST"):
                headers["content-length"] = str(length)
            conn, reused = None, False
            try:
                conn, reused = self._take()
                if start is not None:
                    body.seek(start)  # type: ignore[union-attr]
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                if reused:  # a kept-alive connection the server had closed meanwhile: again on a new one
                    attempt -= 1
                    continue
                if attempt >= self.max_attempts:
                    raise S3Unreachable(f"{self.endpoint}: {type(exc).__name__}: {exc}") from None
                self._backoff(attempt)
                continue
            answer = StreamingBody(self, conn, response)
            if 200 <= response.status < 300:
                return answer
            error = self._error(operation, method, response.status, answer)
            if attempt < self.max_attempts and (response.status in RETRY_STATUS
                                                or error.response["Error"]["Code"] in RETRY_CODES):
                self._backoff(attempt)
                continue
            raise error

    @staticmethod
    def _error(operation: str, method: str, status: int, answer: StreamingBody) -> S3Error:
        from xml.etree import ElementTree

        try:
            data = answer.read()
        except (OSError, http.client.HTTPException):
            data = b""
        code, message = str(status), ""
        if data and method != "HEAD":
            try:
                root = ElementTree.fromstring(data)
                code = root.findtext("Code") or code
                message = root.findtext("Message") or ""
            except ElementTree.ParseError:
                message = data[:200].decode(errors="replace")
        elif status == 404:
            code = "404"
        return S3Error(operation, status, code, message)

    @staticmethod
    def _backoff(attempt: int) -> None:
        time.sleep(random.random() * min(20.0, 2.0 ** (attempt - 1)))

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (True: it was used before), else a new one, connected."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=self._ca_bundle)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._hostname, self._port, timeout=self._connect_timeout, context=context, blocksize=BLOCK)
        else:
            conn = http.client.HTTPConnection(self._hostname, self._port, timeout=self._connect_timeout,
                                              blocksize=BLOCK)
        try:
            conn.connect()
            conn.sock.settimeout(self._read_timeout)
        except BaseException:
            conn.close()
            raise
        return conn, False

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)


_clients: weakref.WeakSet[S3Client] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [client._forget_connections() for client in list(_clients)])
