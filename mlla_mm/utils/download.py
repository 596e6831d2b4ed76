"""Download, verify and record official checkpoints (``tools/download_checkpoints.py``).

* A file is streamed to ``NAME.part`` and only renamed to ``NAME`` once complete and
  verified, so ``NAME`` is never a half-written file.
* An interrupted download resumes from the bytes already in ``NAME.part`` (HTTP Range);
  a server that ignores Range sends the whole file again, which is then restarted cleanly.
* Verification loads the file into its backbone built as the ImageNet model
  (:data:`~mlla_mm.utils.pretrained_zoo.IMAGENET_TRUNK`): every backbone tensor must come
  from the file with the right shape, else :class:`VerifyError` names the file and the problem.
* ``manifest.json`` next to the files records each one's sha256 and size, so a later run
  (``--check``) can tell whether a file changed since it was verified.
"""
import datetime
import hashlib
import http.client
import json
import os
import os.path as osp
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, Dict, Optional

from .pretrained_zoo import IMAGENET_TRUNK, OfficialCheckpoint

MANIFEST = 'manifest.json'
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The server refused or the transfer failed (after the retries)."""


class VerifyError(RuntimeError):
    """A downloaded file is not a usable checkpoint of its backbone."""


class BackboneNotAvailable(VerifyError):
    """The file's backbone type is not registered here, so it cannot be verified."""


class _Interrupted(Exception):
    """The connection ended before the whole file arrived (resumable)."""


# -- progress -----------------------------------------------------------------------------
class Progress:
    """A byte progress bar on stderr: redrawn in place on a terminal, else every 10 %."""

    def __init__(self, label: str, total: Optional[int], done: int = 0, stream=None):
        self.label, self.total, self.done = label, total, done
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
        self.start, self.start_done = time.time(), done
        self._last_draw, self._last_decile = 0.0, -1

    def update(self, n: int) -> None:
        self.done += n
        now = time.time()
        if self.tty and now - self._last_draw > 0.1:
            self._draw('\r', '')
            self._last_draw = now
        elif not self.tty and self.total:
            decile = 10 * self.done // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                self._draw('', '\n')

    def close(self) -> None:
        self._draw('\r' if self.tty else '', '\n')

    def _draw(self, prefix: str, suffix: str) -> None:
        mb = self.done / 2**20
        rate = (self.done - self.start_done) / 2**20 / max(time.time() - self.start, 1e-6)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = '#' * int(30 * frac) + '-' * (30 - int(30 * frac))
            text = f'{self.label} [{bar}] {100 * frac:5.1f}% {mb:.1f}/{self.total / 2**20:.1f} MB'
        else:
            text = f'{self.label} {mb:.1f} MB'
        self.stream.write(f'{prefix}{text} {rate:.1f} MB/s{suffix}')
        self.stream.flush()


# -- transfer -----------------------------------------------------------------------------
def _content_range_total(value: Optional[str]) -> Optional[int]:
    """``'bytes 100-199/1000'`` or ``'bytes */1000'`` -> 1000."""
    if not value or '/' not in value:
        return None
    total = value.rsplit('/', 1)[1].strip()
    return int(total) if total.isdigit() else None


def _fetch_once(url: str, part: str, timeout: float, progress: bool) -> None:
    """One HTTP request: continue ``part`` if it has bytes, else start it.

    Raises ``_Interrupted`` if the body ended early (the caller resumes) and
    ``DownloadError`` for an HTTP error status.
    """
    have = osp.getsize(part) if osp.exists(part) else 0
    headers = {'User-Agent': 'mlla-mm/download_checkpoints'}
    if have:
        headers['Range'] = f'bytes={have}-'
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:
            total = _content_range_total(err.headers.get('Content-Range'))
            if total == have:            # the part file is already complete
                return
            os.remove(part)              # bigger than the file: start over
            raise _Interrupted(f'local partial file does not fit the remote one ({have} bytes '
                               f'vs {total}); starting over') from err
        retry = ' (a server error: try again later)' if err.code >= 500 else ''
        raise DownloadError(f'{url}: HTTP {err.code} {err.reason}{retry}') from err
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        raise _Interrupted(f'cannot reach {url}: {getattr(err, "reason", err)}') from err

    with response:
        if have and response.status == 206:
            first = (response.headers.get('Content-Range') or '').split(' ')[-1].split('-')[0]
            if first != str(have):
                raise DownloadError(f'{url}: asked for bytes from {have}, server sent '
                                    f'{response.headers.get("Content-Range")!r}')
            total = _content_range_total(response.headers.get('Content-Range'))
            mode = 'ab'
        else:                            # 200: the whole file (Range ignored or not sent)
            have = 0
            length = response.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
            mode = 'wb'
        bar = Progress(osp.basename(part)[:-len('.part')], total, have) if progress else None
        try:
            with open(part, mode) as f:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    if bar:
                        bar.update(len(chunk))
        except (http.client.IncompleteRead, socket.timeout, ConnectionError, OSError) as err:
            raise _Interrupted(f'connection lost after {osp.getsize(part)} bytes: {err}') from err
        finally:
            if bar:
                bar.close()
    size = osp.getsize(part)
    if total is not None and size != total:
        raise _Interrupted(f'connection closed after {size} of {total} bytes')


def download(url: str, part: str, retries: int = 3, timeout: float = 60.0,
             progress: bool = True, log: Callable[[str], None] = print) -> str:
    """Download ``url`` into ``part``, resuming what is there; returns ``part``.

    Up to ``retries`` further attempts after an interruption, each resuming.
    """
    os.makedirs(osp.dirname(osp.abspath(part)), exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            return part
        except _Interrupted as err:
            have = osp.getsize(part) if osp.exists(part) else 0
            if attempt == retries:
                raise DownloadError(
                    f'{url}: {err}. The {have} bytes received are kept in {part}; run the '
                    'same command again to resume from there.') from err
            log(f'{osp.basename(part)}: {err}; resuming from byte {have} '
                f'(attempt {attempt + 2} of {retries + 1})')
    raise AssertionError('unreachable')


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(_CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


# -- verification -------------------------------------------------------------------------
def build_trunk(entry: OfficialCheckpoint):
    """The backbone of ``entry`` with exactly the modules of an ImageNet checkpoint."""
    import mlla_mm  # noqa: F401  (registers the backbones)
    from mmengine.registry import MODELS

    from ..registry import registered
    if MODELS.get(entry.backbone) is None:
        ours = sorted(c.__name__ for c in registered('MODELS'))
        raise BackboneNotAvailable(
            f'{entry.file}: cannot verify -- backbone type {entry.backbone!r} is not registered '
            f'in this installation of mlla_mm (it has {ours}). Update mlla-mm to a version that '
            'provides it, or pass --no-verify to keep the file unverified.')
    kwargs = dict(type=entry.backbone, arch=entry.arch, **IMAGENET_TRUNK.get(entry.backbone, {}))
    return MODELS.build(kwargs)


def verify(path: str, entry: OfficialCheckpoint) -> Dict[str, list]:
    """Load ``path`` into ``entry``'s backbone; raise :class:`VerifyError` unless every
    backbone tensor comes from the file. Returns the load report."""
    from mmengine.logging import MMLogger

    from .checkpoint import CheckpointError, load_pretrained
    model = build_trunk(entry)
    # the report below says what is wrong; the loader's own key lists would only repeat it
    name = 'mlla_mm_download'
    logger = (MMLogger.get_instance(name) if MMLogger.check_instance_created(name)
              else MMLogger.get_instance(name, log_level='ERROR'))
    what = f'{entry.backbone} arch={entry.arch!r}'
    try:
        report = load_pretrained(model, path, convert=lambda sd, m: m.convert_checkpoint(sd),
                                 logger=logger)
    except CheckpointError as err:
        raise VerifyError(f'{entry.file}: not a checkpoint of {what}: {err}') from err
    except Exception as err:  # torch.load of a truncated/corrupt/non-torch file
        raise VerifyError(f'{entry.file}: not a readable PyTorch checkpoint '
                          f'({type(err).__name__}: {str(err).splitlines()[0][:300]})') from err
    missing, total = report['missing_keys'], len(model.state_dict())
    if missing:
        if len(missing) > total // 2:
            problem = (f'not a checkpoint of {what}: only {total - len(missing)} of its {total} '
                       'tensors are in the file (another architecture?)')
        else:
            problem = (f'{len(missing)} of the {total} tensors of {what} are missing from the '
                       'file (an incomplete file or another variant?)')
        raise VerifyError(
            f'{entry.file}: {problem}; missing e.g. {missing[:5]}. If they are modules the '
            'backbone adds for dense prediction, add the build arguments that leave them out '
            'to IMAGENET_TRUNK in mlla_mm/utils/pretrained_zoo.py.')
    return report


# -- manifest -----------------------------------------------------------------------------
def read_manifest(folder: str) -> Dict[str, dict]:
    path = osp.join(folder, MANIFEST)
    if not osp.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_manifest(folder: str, manifest: Dict[str, dict]) -> None:
    path = osp.join(folder, MANIFEST)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write('\n')
    os.replace(tmp, path)


def _record(folder: str, entry: OfficialCheckpoint, path: str, url: str, digest: str,
            verified: bool, note: str = '') -> dict:
    manifest = read_manifest(folder)
    record = dict(sha256=digest, size=osp.getsize(path), url=url, backbone=entry.backbone,
                  arch=entry.arch, verified=verified,
                  recorded=datetime.datetime.now().isoformat(timespec='seconds'))
    if note:
        record['note'] = note
    manifest[entry.file] = record
    write_manifest(folder, manifest)
    return record


# -- one file, end to end -----------------------------------------------------------------
def fetch(entry: OfficialCheckpoint, folder: str = 'checkpoints', url: Optional[str] = None,
          verify_file: bool = True, force: bool = False, retries: int = 3,
          timeout: float = 60.0, progress: bool = True,
          log: Callable[[str], None] = print) -> dict:
    """Make ``folder/entry.file`` a verified copy of the official file; returns its record.

    * present and matching the manifest: nothing to do (re-verified if it never was);
    * present, not in the manifest (downloaded by hand): verified and recorded;
    * present but its sha256 differs from the manifest: :class:`VerifyError` (``force``
      downloads it again);
    * otherwise downloaded (resuming ``NAME.part``), verified, renamed, recorded.
    """
    url = url or entry.url
    final = osp.join(folder, entry.file)
    part = final + '.part'
    os.makedirs(folder, exist_ok=True)
    known = read_manifest(folder).get(entry.file)

    if osp.exists(final) and not force:
        digest = sha256(final)
        if known and known.get('sha256') != digest:
            raise VerifyError(f'{final}: sha256 {digest[:16]}... differs from the '
                              f'{known["sha256"][:16]}... recorded when it was downloaded '
                              f'({known.get("recorded")}); the file changed. Pass --force to '
                              'download it again.')
        if known and (known.get('verified') or not verify_file):
            log(f'{entry.file}: present, sha256 matches the manifest')
            return known
        if verify_file:
            verify(final, entry)
        log(f'{entry.file}: present, {"verified, " if verify_file else ""}recorded')
        return _record(folder, entry, final, known.get('url', url) if known else 'local file',
                       digest, verify_file)

    if force and osp.exists(part):
        os.remove(part)
    if osp.exists(part):
        log(f'{entry.file}: resuming {part} ({osp.getsize(part)} bytes)')
    log(f'{entry.file}: downloading {url}')
    download(url, part, retries=retries, timeout=timeout, progress=progress, log=log)
    digest = sha256(part)
    note = ''
    if verify_file:
        try:
            verify(part, entry)
        except BackboneNotAvailable as err:
            # the file may well be fine: keep it, unverified, and say so
            os.replace(part, final)
            _record(folder, entry, final, url, digest, False, note=str(err))
            raise
        except VerifyError as err:
            os.remove(part)   # a bad download must not be resumed or used
            raise VerifyError(f'{err} (downloaded from {url}, sha256 {digest}; the file was '
                              'deleted)') from err
    else:
        note = 'not verified (--no-verify)'
    os.replace(part, final)
    record = _record(folder, entry, final, url, digest, verify_file, note)
    log(f'{entry.file}: {"verified, " if verify_file else ""}saved as {final} '
        f'(sha256 {digest[:16]}...)')
    return record


def check(folder: str, entries) -> Dict[str, str]:
    """Re-hash every file the manifest records; ``{file: 'ok' | problem}``."""
    manifest = read_manifest(folder)
    status = {}
    for entry in entries:
        path = osp.join(folder, entry.file)
        known = manifest.get(entry.file)
        if not osp.exists(path):
            status[entry.file] = 'missing' if known else 'not downloaded'
        elif not known:
            status[entry.file] = 'present but not in the manifest (run the download to verify it)'
        elif sha256(path) != known['sha256']:
            status[entry.file] = 'CHANGED: sha256 differs from the manifest'
        else:
            status[entry.file] = 'ok' if known.get('verified') else 'ok (unverified)'
    return status
