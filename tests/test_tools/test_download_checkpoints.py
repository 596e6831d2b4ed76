"""tools/download_checkpoints.py against a local HTTP server started here (no network):
success, interrupted-and-resumed, corrupt file, wrong architecture, server error."""
import hashlib
import http.server
import importlib.util
import io
import json
import os
import os.path as osp
import threading

import pytest
import torch

from mlla_mm.models.backbones import MLLA, VMamba
from mlla_mm.utils import download as dl
from mlla_mm.utils.pretrained_zoo import OfficialCheckpoint

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_MLLA = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
TINY_VMAMBA = dict(preset='tiny', embed_dims=16, depths=[1, 1, 1, 1])


def _as_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _official_mlla(drop_prefix=None) -> bytes:
    """A tiny MLLA checkpoint laid out as the official ones (classifier head, 'model')."""
    sd = MLLA(arch=TINY_MLLA, out_indices=()).state_dict()
    if drop_prefix:
        sd = {k: v for k, v in sd.items() if not k.startswith(drop_prefix)}
    sd['head.weight'] = torch.randn(1000, 128)
    sd['head.bias'] = torch.randn(1000)
    return _as_bytes({'model': sd, 'epoch': 300})


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours Range; ``server.modes[path]``: 'cut' (send half of
    the first response, then hang up), 'error' (HTTP 500)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get('Range')))
        mode = server.modes.get(self.path)
        if mode == 'error':
            self.send_error(500, 'internal error')
            return
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, 'not found')
            return
        start = 0
        if self.headers.get('Range'):
            start = int(self.headers['Range'].split('=')[1].split('-')[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{len(data)}')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if mode == 'cut' and self.path not in server.cut:
            server.cut.add(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            return   # HTTP/1.0: the connection closes with the body half sent
        self.wfile.write(body)


@pytest.fixture(scope='module')
def server():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.files, httpd.modes, httpd.cut, httpd.requests = {}, {}, set(), []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}'
    yield httpd
    httpd.shutdown()


def _serve(server, name, data, mode=None, backbone='MLLA', arch=TINY_MLLA):
    path = f'/{name}'
    server.files[path] = data
    if mode:
        server.modes[path] = mode
    return OfficialCheckpoint(name, server.url + path, backbone, arch, 0.0, 'test server')


def _fetch(entry, folder, **kwargs):
    return dl.fetch(entry, str(folder), progress=False, log=lambda msg: None, **kwargs)


def test_download_verifies_and_records_sha256(server, tmp_path):
    data = _official_mlla()
    entry = _serve(server, 'ok.pth', data)
    record = _fetch(entry, tmp_path)
    assert (tmp_path / 'ok.pth').read_bytes() == data
    assert not (tmp_path / 'ok.pth.part').exists()
    manifest = json.loads((tmp_path / dl.MANIFEST).read_text())
    assert manifest['ok.pth']['sha256'] == hashlib.sha256(data).hexdigest() == record['sha256']
    assert manifest['ok.pth']['verified'] is True and manifest['ok.pth']['size'] == len(data)

    # a later run finds it, checks the hash, downloads nothing
    requests = len(server.requests)
    assert _fetch(entry, tmp_path)['sha256'] == record['sha256']
    assert len(server.requests) == requests
    assert dl.check(str(tmp_path), [entry]) == {'ok.pth': 'ok'}

    # a file changed after download is caught, and --force fetches it again
    with open(tmp_path / 'ok.pth', 'r+b') as f:
        f.seek(100)
        f.write(b'\0' * 8)
    assert dl.check(str(tmp_path), [entry])['ok.pth'].startswith('CHANGED')
    with pytest.raises(dl.VerifyError, match=r'ok\.pth.*differs from the .* recorded'):
        _fetch(entry, tmp_path)
    _fetch(entry, tmp_path, force=True)
    assert (tmp_path / 'ok.pth').read_bytes() == data


def test_interrupted_download_resumes(server, tmp_path):
    data = _official_mlla()
    entry = _serve(server, 'cut.pth', data, mode='cut')
    # no retries: the run fails, the final name does not exist, the partial file stays
    with pytest.raises(dl.DownloadError, match=r'run the same command again to resume'):
        _fetch(entry, tmp_path, retries=0)
    part = tmp_path / 'cut.pth.part'
    assert not (tmp_path / 'cut.pth').exists()
    assert 0 < part.stat().st_size < len(data)
    have = part.stat().st_size

    _fetch(entry, tmp_path)   # the next run asks only for the rest
    assert server.requests[-1] == ('/cut.pth', f'bytes={have}-')
    assert (tmp_path / 'cut.pth').read_bytes() == data
    assert not part.exists()


def test_complete_partial_file_is_not_downloaded_again(server, tmp_path):
    # e.g. the process died between the last byte and the rename
    data = _official_mlla()
    entry = _serve(server, 'complete.pth', data)
    (tmp_path / 'complete.pth.part').write_bytes(data)
    _fetch(entry, tmp_path)
    assert server.requests[-1] == ('/complete.pth', f'bytes={len(data)}-')   # answered 416
    assert (tmp_path / 'complete.pth').read_bytes() == data


def test_interruption_retried_within_one_run(server, tmp_path):
    data = _official_mlla()
    entry = _serve(server, 'cut_retry.pth', data, mode='cut')
    _fetch(entry, tmp_path, retries=2)
    ranges = [r for p, r in server.requests if p == '/cut_retry.pth']
    assert ranges[0] is None and ranges[1].startswith('bytes=') and ranges[1] != 'bytes=0-'
    assert (tmp_path / 'cut_retry.pth').read_bytes() == data


@pytest.mark.parametrize('kind', ['html', 'truncated'])
def test_corrupt_file_is_rejected_and_removed(server, tmp_path, kind):
    # what a server sends as a complete file: an HTML page instead of the weights (a login
    # or error page of a file host), or a checkpoint cut short at the source
    data = (b'<html><body>Please log in</body></html>' if kind == 'html'
            else _official_mlla()[:20000])
    entry = _serve(server, f'corrupt_{kind}.pth', data)
    with pytest.raises(dl.VerifyError, match=rf'corrupt_{kind}\.pth: not a readable PyTorch '
                       r'checkpoint .*the file was deleted'):
        _fetch(entry, tmp_path)
    assert os.listdir(tmp_path) == []   # neither the final name nor a .part


def test_wrong_architecture_is_rejected(server, tmp_path):
    vmamba = VMamba(arch=TINY_VMAMBA, out_indices=()).state_dict()
    entry = _serve(server, 'vmamba_as_mlla.pth', _as_bytes({'model': vmamba}))
    with pytest.raises(dl.VerifyError, match=r'vmamba_as_mlla\.pth: not a checkpoint of MLLA'):
        _fetch(entry, tmp_path)
    assert not (tmp_path / 'vmamba_as_mlla.pth').exists()

    other_width = _as_bytes({'model': MLLA(arch=dict(TINY_MLLA, embed_dims=8),
                                           out_indices=()).state_dict()})
    entry = _serve(server, 'narrow.pth', other_width)
    with pytest.raises(dl.VerifyError, match=r'narrow\.pth: .*wrong shape'):
        _fetch(entry, tmp_path)

    entry = _serve(server, 'incomplete.pth', _official_mlla(drop_prefix='layers.3.'))
    with pytest.raises(dl.VerifyError, match=r"incomplete\.pth: \d+ of the \d+ tensors of MLLA "
                       r".* are missing from the file .*missing e\.g\. \['layers\.3\."):
        _fetch(entry, tmp_path)
    assert not (tmp_path / dl.MANIFEST).exists()


def test_server_error_leaves_nothing(server, tmp_path):
    entry = _serve(server, 'broken.pth', b'x', mode='error')
    with pytest.raises(dl.DownloadError, match=r'broken\.pth: HTTP 500'):
        _fetch(entry, tmp_path)
    entry = OfficialCheckpoint('absent.pth', server.url + '/absent.pth', 'MLLA', 'tiny', 0, '')
    with pytest.raises(dl.DownloadError, match='HTTP 404'):
        _fetch(entry, tmp_path)
    assert os.listdir(tmp_path) == []


def test_unregistered_backbone_is_kept_unverified(server, tmp_path):
    entry = _serve(server, 'future.pth', _official_mlla(), backbone='NoSuchNet', arch='tiny')
    with pytest.raises(dl.BackboneNotAvailable, match=r"future\.pth: cannot verify -- backbone type "
                       r"'NoSuchNet' is not registered"):
        _fetch(entry, tmp_path)
    manifest = json.loads((tmp_path / dl.MANIFEST).read_text())
    assert manifest['future.pth']['verified'] is False
    assert dl.check(str(tmp_path), [entry]) == {'future.pth': 'ok (unverified)'}


def _tool():
    spec = importlib.util.spec_from_file_location(
        'download_checkpoints', osp.join(ROOT, 'tools', 'download_checkpoints.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_command_line(server, tmp_path, capsys):
    tool = _tool()
    server.files['/MLLA_T.pth'] = b'not really MLLA-T'
    folder = str(tmp_path / 'ckpts')
    assert tool.main(['MLLA_T', '--mirror', server.url, '--dir', folder, '--no-verify',
                      '--quiet']) == 0
    assert open(osp.join(folder, 'MLLA_T.pth'), 'rb').read() == b'not really MLLA-T'
    assert tool.main(['--check', '--dir', folder]) == 0
    assert 'MLLA_T.pth: ok (unverified)' in capsys.readouterr().out
    # a failing file gives exit status 1 and names the file
    assert tool.main(['MLLA_S.pth', '--mirror', server.url, '--dir', folder, '--quiet']) == 1
    assert 'MLLA_S.pth: HTTP 404' in capsys.readouterr().err
    with pytest.raises(KeyError, match="'nonet' names no official checkpoint"):
        tool.main(['nonet', '--dir', folder])
    # a config names what it needs
    needed = tool.files_of_config(osp.join(ROOT, 'configs/upernet_mlla_b.py'))
    assert [e.file for e in needed] == ['MLLA_B.pth']
    assert tool.main(['--list', '--dir', folder]) == 0
    table = capsys.readouterr().out
    assert '| MLLA_T.pth | MLLA | tiny | 83.5 | present |' in table
    assert 'mambaout_kobe.pth' in table


def test_google_drive_rows_ask_for_a_manual_download(tmp_path, capsys):
    """HRVMamba's files are on Google Drive: the tool names the link and the manual step
    instead of saving Drive's confirmation page; a file put there by hand is verified."""
    from mlla_mm.models.backbones import HRVMamba
    tool = _tool()
    folder = str(tmp_path / 'ckpts')
    assert tool.main(['hrvmamba_small_best.pth', '--dir', folder, '--quiet']) == 1
    err = capsys.readouterr().err
    assert 'hrvmamba_small_best.pth: https://drive.google.com/file/d/' in err
    assert f'save the file as {osp.join(folder, "hrvmamba_small_best.pth")}' in err
    assert not osp.exists(folder) or not os.listdir(folder)
    assert tool.main(['--list', '--dir', folder]) == 0
    assert '(manual download)' in capsys.readouterr().out
    # saved by hand: an ImageNet-layout file (Swin-style 'model', classifier head) verifies
    arch = dict(stage1_channels=8, channels=[16, 16, 16, 16], num_modules=(1, 1, 1),
                num_blocks=1)
    sd = HRVMamba(arch, with_neck=True, with_out_norms=False).state_dict()
    sd['head.weight'], sd['head.bias'] = torch.randn(1000, 2048), torch.randn(1000)
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, 'hrvmamba_small_best.pth')
    torch.save({'model': sd, 'model_ema': sd}, path)
    entry = OfficialCheckpoint('hrvmamba_small_best.pth', 'https://drive.google.com/file/d/x',
                               'HRVMamba', arch, 81.3, 'test')
    record = dl.fetch(entry, folder, progress=False, log=lambda msg: None)
    assert record['verified']
