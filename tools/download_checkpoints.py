"""Download the official ImageNet-1k checkpoints our configs start from, and verify them.

    python tools/download_checkpoints.py --list                  # the table
    python tools/download_checkpoints.py MLLA_T.pth              # one file
    python tools/download_checkpoints.py vmamba vim_s_midclstok_80p5acc.pth   # several
    python tools/download_checkpoints.py configs/upernet_mlla_b.py             # what a config needs
    python tools/download_checkpoints.py --all                   # every file
    python tools/download_checkpoints.py --check                 # re-hash against the manifest

Names are file names, their stems, backbone types (MLLA, VMamba, Vim, MambaOut) or config
files. Files land in ``checkpoints/`` (``--dir``) with a progress bar; an interrupted
download resumes where it stopped when run again; a file only gets its final name once it
is complete and loads into its backbone with every backbone tensor present; its sha256 is
recorded in ``checkpoints/manifest.json``. The table: ``mlla_mm/utils/pretrained_zoo.py``.
Exit status 1 if any file failed.

Google Drive links (HRVMamba) cannot be fetched here (Drive answers large files with a
virus-scan confirmation page): download them by hand to ``checkpoints/FILE`` and run the
same command, which then verifies and records them (the error prints the link).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
from mlla_mm.utils import download as dl  # noqa: E402
from mlla_mm.utils.pretrained_zoo import (OFFICIAL_CHECKPOINTS, by_file,  # noqa: E402
                                          needs_manual_download, select)


def files_of_config(path: str):
    """The official files a config's backbone ``init_cfg`` names (by file name)."""
    import mlla_mm  # noqa: F401  (mlla_mm:: configs)
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    names = []

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'Pretrained' and node.get('checkpoint'):
                names.append(osp.basename(node['checkpoint']))
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.get('model', {}))
    known = by_file()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f'{path} names {unknown}, which are not official files of the table')
    if not names:
        raise KeyError(f'{path} starts from no pretrained checkpoint (no init_cfg '
                       "type='Pretrained')")
    return [known[n] for n in names]


def print_table(folder: str) -> None:
    manifest = dl.read_manifest(folder)
    print('| file | backbone | arch | IN-1k top-1 | in ' + folder + ' | url |')
    print('|---|---|---|---|---|---|')
    for c in OFFICIAL_CHECKPOINTS:
        here = osp.exists(osp.join(folder, c.file))
        state = ('verified' if manifest.get(c.file, {}).get('verified') else 'present') \
            if here else '-'
        manual = ' (manual download)' if needs_manual_download(c.url) else ''
        print(f'| {c.file} | {c.backbone} | {c.arch} | {c.top1} | {state} | {c.url}{manual} |')


def manual_download_error(entry, folder: str) -> str:
    target = osp.join(folder, entry.file)
    return (f'{entry.file}: {entry.url} is a Google Drive link, which this downloader cannot '
            'fetch (Drive answers large files with a confirmation page, not the file). Open '
            f'the link in a browser (or run `gdown --fuzzy {entry.url} -O {target}`), save the '
            f'file as {target}, then run this command again: it verifies and records it.')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', help='files, stems, backbones or config files')
    parser.add_argument('--all', action='store_true', help='every official file')
    parser.add_argument('--list', action='store_true', help='print the table and exit')
    parser.add_argument('--check', action='store_true',
                        help="re-hash the files against the manifest's sha256 and exit")
    parser.add_argument('--dir', default='checkpoints', help='target folder')
    parser.add_argument('--mirror', help='fetch FILE from MIRROR/FILE instead of the official '
                        'URL (an internal copy of the files)')
    parser.add_argument('--no-verify', action='store_true',
                        help='do not load the files into their backbones (not recommended)')
    parser.add_argument('--force', action='store_true',
                        help='download again even if the file is present')
    parser.add_argument('--retries', type=int, default=3,
                        help='resume attempts after an interruption (default 3)')
    parser.add_argument('--timeout', type=float, default=60.0, help='socket timeout, seconds')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)

    if args.list:
        print_table(args.dir)
        return 0
    if args.all:
        entries = list(OFFICIAL_CHECKPOINTS)
    elif args.names:
        entries = []
        for name in args.names:
            found = (files_of_config(name) if name.endswith('.py') or '::' in name
                     else select([name]))
            entries += [e for e in found if e not in entries]
    elif args.check:
        entries = list(OFFICIAL_CHECKPOINTS)
    else:
        parser.error('name the files to download (or --all, --list, --check)')

    if args.check:
        status = dl.check(args.dir, entries)
        for name, state in status.items():
            print(f'{name}: {state}')
        return int(any(s.startswith(('CHANGED', 'missing')) for s in status.values()))

    failed = []
    for entry in entries:
        url = f'{args.mirror.rstrip("/")}/{entry.file}' if args.mirror else None
        if (url is None and needs_manual_download(entry.url)
                and not osp.exists(osp.join(args.dir, entry.file))):
            print(f'ERROR {manual_download_error(entry, args.dir)}', file=sys.stderr)
            failed.append(entry.file)
            continue
        try:
            dl.fetch(entry, args.dir, url=url, verify_file=not args.no_verify, force=args.force,
                     retries=args.retries, timeout=args.timeout, progress=not args.quiet)
        except (dl.DownloadError, dl.VerifyError) as err:
            print(f'ERROR {err}', file=sys.stderr)
            failed.append(entry.file)
    if failed:
        print(f'{len(failed)} of {len(entries)} files failed: {failed}', file=sys.stderr)
        return 1
    print(f'{len(entries)} files ready in {args.dir}/ (sha256 in {args.dir}/{dl.MANIFEST})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
