"""PreemptionHook: on SIGTERM / SIGUSR1, finish the iteration, checkpoint, exit.

SLURM sends SIGTERM before it kills a preempted or cancelled job (``GraceTime`` /
``KillWait`` later comes SIGKILL), and ``--signal=USR1@SECONDS`` asks it to send SIGUSR1
that long before the time limit (see ``tools/slurm_train.sh``). Without this hook the
job dies at once and loses everything since its last scheduled checkpoint.

With it, the signal only sets a flag; the current iteration finishes (with all its
hooks: scheduler step, logging, scheduled checkpoint), then rank 0 writes
``preempted_iter_<N>.pth`` atomically (temporary file + ``os.replace``, see
:mod:`mlla_mm.compat`) and points ``last_checkpoint`` at it, all ranks wait for that
(barrier), log one line saying so and exit with status 128 + signal number (143 for
SIGTERM, 138 for SIGUSR1: what the scheduler expects from a job ended by that signal).
``tools/train.py CONFIG --resume`` continues from it; with :class:`ExactResumeHook` (our
runtimes have both), also from the middle of an epoch and exactly as if uninterrupted.

Dataloader workers ignore these signals (the main process decides and then shuts them
down), so a signal sent to the whole process group does not kill them mid-iteration.
In distributed runs the ranks agree (all-reduce of the flag after every iteration) on
the iteration after which they all stop.
"""
import os
import os.path as osp
import signal
import tempfile
import threading
from typing import Optional, Sequence

import torch
from mmengine.dist import barrier, get_world_size, is_main_process
from mmengine.hooks import Hook

from ..registry import register_hook
from .train_data import ChainedWorkerInit, guarded_train_dataloader


class TrainingPreempted(SystemExit):
    """Raised after the preemption checkpoint is written; exits with 128 + signal."""


def ignore_preemption_signals(worker_id: int) -> None:
    """``worker_init_fn`` part: dataloader workers leave the signals to the main process.

    SLURM signals every process of the job step, and a torch worker dies on SIGTERM (and
    SIGUSR1), whereupon torch raises in the main process at once -- mid-iteration, before
    any checkpoint. The main process shuts its workers down itself, and kills any left at
    exit (:func:`_kill_leftover_workers`), since multiprocessing's exit handler would
    otherwise wait forever for a daemon worker that ignores its SIGTERM.
    """
    for name in ('SIGTERM', 'SIGUSR1'):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


_ATEXIT_REGISTERED = False


def _kill_leftover_workers() -> None:
    # multiprocessing ends daemonic children at exit with SIGTERM, then joins them; our
    # workers ignore SIGTERM, so end them (all daemonic children, as it would) with SIGKILL
    import multiprocessing
    daemons = [p for p in multiprocessing.active_children() if p.daemon]
    if daemons and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # torch's handler would raise now
    for process in daemons:
        process.kill()


def _register_worker_cleanup() -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        import atexit
        import multiprocessing.util  # noqa: F401  (its exit handler must run after ours)
        atexit.register(_kill_leftover_workers)
        _ATEXIT_REGISTERED = True


@register_hook()
class PreemptionHook(Hook):
    """Checkpoint and exit on preemption signals (see module docstring).

    Args:
        signals (sequence of str): signal names to handle. Default SIGTERM and SIGUSR1.
    """
    priority = 'LOWEST'  # after every other after_train_iter (scheduler, checkpoint, log)

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1')) -> None:
        unknown = [s for s in signals if not isinstance(getattr(signal, str(s), None),
                                                        signal.Signals)]
        if unknown:
            raise ValueError(f'PreemptionHook: unknown signal name(s) {unknown}; use names '
                             'such as SIGTERM, SIGUSR1, SIGUSR2')
        self.signals = [getattr(signal, s) for s in signals]
        self._received: Optional[int] = None
        self._previous = {}
        self._pid = None

    def configure_train_data(self, runner, settings) -> None:
        _register_worker_cleanup()
        settings.worker_init_fns.append(ignore_preemption_signals)

    def _on_signal(self, signum, frame) -> None:
        if os.getpid() != self._pid:
            return  # a forked dataloader worker: the main process handles it
        if self._received is None:
            self._received = signum

    def before_train(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('PreemptionHook: not in the main thread, cannot install '
                                  'signal handlers; preemption will not be checkpointed')
            return
        guarded_train_dataloader(runner)  # training workers ignore the signals (see above)
        val_loader = getattr(runner.val_loop, 'dataloader', None)
        if val_loader is not None and getattr(val_loader, 'num_workers', 0) > 0:
            _register_worker_cleanup()
            val_loader.worker_init_fn = ChainedWorkerInit([val_loader.worker_init_fn,
                                                           ignore_preemption_signals])
        self._pid = os.getpid()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        runner.logger.info(
            'PreemptionHook: on ' + '/'.join(signal.Signals(s).name for s in self.signals) +
            ' the current iteration finishes, a checkpoint is written, and the run exits')

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        signum = self._agreed_signal()
        if not signum:
            return
        name = signal.Signals(signum).name
        filename = f'preempted_iter_{runner.iter + 1}.pth'
        runner.logger.warning(f'{name} received: iteration {runner.iter + 1} is done; '
                              f'writing {filename}')
        runner.save_checkpoint(runner.work_dir, filename, by_epoch=False)
        path = osp.join(runner.work_dir, filename)
        if is_main_process():
            _write_atomically(osp.join(runner.work_dir, 'last_checkpoint'), path)
        barrier()  # no rank exits (and gets its peers killed) before the file is complete
        self._restore_handlers()
        runner.logger.warning(
            f'Preempted by {name}: stopped after iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}); checkpoint {path}. Continue with: '
            'python tools/train.py CONFIG --work-dir ' + runner.work_dir + ' --resume')
        raise TrainingPreempted(128 + signum)

    def _agreed_signal(self) -> int:
        local = self._received or 0
        if get_world_size() == 1:
            return local
        from mmengine.dist.utils import get_comm_device
        flag = torch.tensor([local], dtype=torch.int64, device=get_comm_device())
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item())


def _write_atomically(path: str, text: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
