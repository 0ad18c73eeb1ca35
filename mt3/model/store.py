"""Where models live on disk, and the one way to load one.

Two layouts hold a model:

* a **model folder** (``mt3 convert-checkpoint``, :func:`save_model`): ``DIR/config.json`` (the
  ModelConfig), ``DIR/params/`` (orbax), the parameters as a nested dict keyed by the T5X module
  names (``encoder/layers_0/attention/query/kernel``), float32, and ``DIR/checksums.json`` (size
  and CRC-32 of every file under params/, checked before loading: overwritten bytes in a raw
  array chunk would otherwise load as silently wrong weights);
* a **training run** (``mt3 train --workdir DIR``): ``DIR/config.json`` (the run's RunConfig) and
  ``DIR/checkpoints/<step>/`` with the items ``state`` (``{"params", "optimizer"}``) and ``data``
  (the input iterator's position), written and read by :class:`RunCheckpoints`.

:func:`load_model` takes either and restores parameters only; ``TrainConfig.init_from``
(:func:`load_params`) and training's own resume (:class:`RunCheckpoints`) go through this module
too. A run's checkpoints load on any device count: arrays are restored onto one device unless the
caller gives shardings.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from mt3.atomic import atomic_write_text, check_writable, umask_mode
from mt3.config import ConfigError, ModelConfig, RunConfig
from mt3.errors import Mt3Error
from mt3.model.t5 import Transformer, shapes_only

CONFIG_FILE = "config.json"  # a model folder's ModelConfig, or a run's RunConfig
PARAMS_DIR = "params"
abandoned_reads = False  # a failed orbax restore left reads behind (_drop_abandoned_reads)
CHECKSUMS_FILE = "checksums.json"  # {"params/...": [size, crc32]} of a model folder
CHECKPOINTS_DIR = "checkpoints"
RUN_ITEMS = ("state", "data")


class CheckpointError(Mt3Error, ValueError):
    """A missing, incomplete or incompatible checkpoint."""


class DamagedFiles(CheckpointError):
    """Files that differ from their folder's checksums.json."""


def param_dict(model: Transformer) -> dict:
    """Parameters as a nested dict of numpy arrays."""
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a training run (it has a checkpoints/ folder)."""
    return (Path(path) / CHECKPOINTS_DIR).is_dir()


def save_model(model: Transformer, directory: str | os.PathLike) -> None:
    """Write a model folder (config + parameters); it appears complete or not at all."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if directory.exists():
        raise CheckpointError(f"{directory}: already exists; choose a new output folder")
    check_writable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    params = param_dict(model)
    shortage = _space_shortage(params, directory.parent)
    if shortage:
        raise CheckpointError(
            f"{directory}: not enough space (the model {shortage}); free some space or choose "
            "another folder"
        )
    _quiet_orbax()
    checkpointer = ocp.StandardCheckpointer()
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        (staging / CONFIG_FILE).write_text(
            json.dumps(dataclasses.asdict(model.config), indent=1) + "\n"
        )
        checkpointer.save(staging / PARAMS_DIR, params)
        checkpointer.wait_until_finished()
        sums = {name: list(entry) for name, entry in _checksums(staging).items()}
        (staging / CHECKSUMS_FILE).write_text(json.dumps(sums, indent=0) + "\n")
        os.chmod(staging, umask_mode(0o777))  # mkdtemp made it private
        for name in (CONFIG_FILE, CHECKSUMS_FILE):
            os.chmod(staging / name, umask_mode())
        os.replace(staging, directory)
    except Exception as error:  # orbax raises what its writers met (a full disk, ...)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else None
        reason = reason or _reason(error)  # (an OSError's file is the staging folder's)
        raise CheckpointError(f"{directory}: writing failed ({reason})") from None
    finally:
        checkpointer.close()
        if staging is not None:
            _remove_tree(staging)


def _remove_tree(path: Path) -> None:
    """Delete a folder that a failed orbax save may still be writing into: tensorstore's writes
    in flight create their parent folders again, so delete until it stays gone."""
    import time

    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(0.1)
        if not path.exists():
            return


def _space_shortage(arrays, folder: Path) -> str:
    """What is missing ("needs about X MB, Y MB are free") when ``folder``'s disk cannot hold
    the arrays (an orbax checkpoint is as large as its arrays, plus metadata), else ""."""
    needed = sum(leaf.nbytes for leaf in jax.tree.leaves(arrays)) * 1.05 + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free >= needed:
        return ""
    return f"needs about {needed / 1e6:.0f} MB, {free / 1e6:.0f} MB are free"


def _checksums(directory: Path, under: str = PARAMS_DIR) -> dict[str, tuple[int, int]]:
    """(size, CRC-32) of every file under ``directory/under``, by path relative to
    ``directory`` (checksums.json itself excluded)."""
    import zlib

    sums = {}
    for path in sorted((directory / under).rglob("*")):
        if path.is_file() and path.name != CHECKSUMS_FILE:
            data = path.read_bytes()
            sums[path.relative_to(directory).as_posix()] = (len(data), zlib.crc32(data))
    return sums


def verify_model_folder(directory: str | os.PathLike) -> None:
    """Raise CheckpointError naming the first parameter file whose size or CRC-32 differs from
    the folder's checksums.json (folders written before it existed are not checked)."""
    _verify(Path(directory), PARAMS_DIR, "convert the checkpoint again")


def _verify(directory: Path, under: str, remedy: str = "") -> None:
    """Check the files under ``directory/under`` against ``directory/checksums.json``, if any."""
    listing = directory / CHECKSUMS_FILE
    if not listing.is_file():
        return
    remedy = f"; {remedy}" if remedy else ""
    try:
        expected = {name: tuple(entry) for name, entry in json.loads(listing.read_text()).items()}
    except (ValueError, TypeError, AttributeError):
        raise DamagedFiles(f"{listing}: unreadable{remedy}") from None
    found = _checksums(directory, under)
    for name, entry in expected.items():
        if name not in found:
            raise DamagedFiles(f"{directory / name}: missing{remedy}")
        if found[name] != entry:
            raise DamagedFiles(
                f"{directory / name}: damaged (size or checksum differs from {CHECKSUMS_FILE})"
                f"{remedy}"
            )


def read_config(path: str | os.PathLike) -> ModelConfig:
    """The ModelConfig of a model folder or a training run."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(
            f"{path}: not an mt3 checkpoint (no {CONFIG_FILE}); convert Magenta's T5X "
            "checkpoints with `mt3 convert-checkpoint`, or give a training run's workdir"
        )
    try:
        if is_run(path):
            return RunConfig.from_json(file.read_text()).model
        return ModelConfig(**json.loads(file.read_text()))
    except (TypeError, ValueError, KeyError, ConfigError) as error:
        raise CheckpointError(f"{file}: unreadable model config ({error})") from None


@functools.cache
def _abstract_model(config: ModelConfig):
    """(graphdef, parameter state, other state) of the network traced without allocating or
    initialising (``shapes_only``): tracing the constructor takes about as long as reading the
    parameters, so it is done once per process."""
    with shapes_only():
        abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    return nnx.split(abstract, nnx.Param, ...)


def abstract_params(config: ModelConfig, sharding=None) -> dict:
    """ShapeDtypeStructs of a network's parameters (nothing is allocated)."""
    _, param_state, _ = _abstract_model(config)
    sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        nnx.to_pure_dict(param_state),
    )


def load_params(path: str | os.PathLike, step: int | None = None) -> tuple[ModelConfig, dict]:
    """(ModelConfig, parameters as a nested dict) of a model folder or of a training run at its
    latest (or the given) step."""
    import orbax.checkpoint as ocp

    config = read_config(path)
    target = abstract_params(config)
    if is_run(path):
        checkpoints = RunCheckpoints(path)
        try:
            return config, checkpoints.restore_params(target, step)
        finally:
            checkpoints.close()
    params_path = Path(path).absolute() / PARAMS_DIR
    if not params_path.is_dir():
        raise CheckpointError(f"{path}: no {PARAMS_DIR}/ folder with the parameters")
    verify_model_folder(path)
    try:
        return config, ocp.StandardCheckpointer().restore(params_path, target)
    except Exception as error:  # orbax raises several types for mismatched trees
        _drop_abandoned_reads()
        raise CheckpointError(
            f"{params_path}: parameters damaged or not matching {CONFIG_FILE} "
            f"({_reason(error)}); convert the checkpoint again"
        ) from None


def load_model(path: str | os.PathLike, step: int | None = None) -> Transformer:
    """The network of a model folder, or of a training run at its latest (or a given) step."""
    config, params = load_params(path, step)
    return build_model(config, params)


def build_model(config: ModelConfig, params: dict) -> Transformer:
    """The network with the given parameters, without first drawing random ones (which takes
    longer than reading the checkpoint): the module tree is traced abstractly, the parameters
    are put in, and the dropout generators get fresh keys as ``nnx.Rngs(0)`` would."""
    graphdef, param_state, rest = _abstract_model(config)
    param_state = jax.tree.map(lambda leaf: leaf, param_state)  # a copy: the cached one stays
    nnx.replace_by_pure_dict(param_state, params)

    def concrete(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            count = int(np.prod(leaf.shape))
            return jax.random.split(jax.random.key(0), count).reshape(leaf.shape)
        return jax.numpy.zeros(leaf.shape, leaf.dtype)

    return nnx.merge(graphdef, param_state, jax.tree.map(concrete, rest))


class RunCheckpoints:
    """A training run's checkpoints: ``WORKDIR/checkpoints/<step>/{state,data}``.

    ``state`` is ``{"params": ..., "optimizer": ...}`` (pure dicts of arrays); ``data`` is the
    input iterator's state as JSON. With ``keep``, the folder is created and only the newest
    ``keep`` checkpoints are kept (training); without, it is opened for reading.

    A checkpoint that cannot be read (a truncated array file, emptied metadata, a missing
    folder, bytes that differ from its ``checksums.json``) is reported with a warning naming its
    step, and the newest intact one is used. When training, the damaged step folder is moved
    aside (``damaged-<step>``), never deleted.

    Saving checks the free space first (a checkpoint is as large as its arrays); a save that
    fails anyway (the disk filled while it was written) is reported by the next ``wait``, its
    partial folder removed, and the run stops with the newest complete checkpoint kept. Orbax's
    own reports of the failure (log errors, tracebacks of its abandoned writes) are muted: the
    one line of CheckpointError says it.
    """

    def __init__(self, workdir: str | os.PathLike, keep: int | None = None):
        self.directory = Path(workdir).absolute() / CHECKPOINTS_DIR
        self.keep = keep
        self._pending = None  # the step being written
        self._failed = False  # a save failed (reported once)
        _quiet_orbax()
        self._open()

    def _open(self) -> None:
        import orbax.checkpoint as ocp

        writing = self.keep is not None  # a training run: also clear an interrupted save's files
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self.keep, create=writing, cleanup_tmp_directories=writing
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=RUN_ITEMS)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: dict, data_state: dict) -> None:
        """Start writing a checkpoint (asynchronously; ``wait`` or ``close`` finish it)."""
        import orbax.checkpoint as ocp

        shortage = _space_shortage(state, self.directory)
        if shortage:
            raise CheckpointError(
                f"{self.directory}: not enough space for the checkpoint of step {step} (it "
                f"{shortage}); {self._kept()}"
            )
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)
                ),
                force=True,
            )
        except Exception as error:  # the synchronous part (folders, metadata) failed
            self._remove_partial()
            raise CheckpointError(
                f"{self.directory}: saving step {step} failed ({_reason(error)}); {self._kept()}"
            ) from None
        self._pending = step

    def wait(self) -> None:
        """Wait for the checkpoint being written and record its checksums; a failed save raises
        CheckpointError (once)."""
        try:
            self._manager.wait_until_finished()
        except Exception as error:  # orbax re-raises the writer's error (OSError, ...)
            if self._failed:
                return
            self._failed = True
            step, self._pending = self._pending, None
            self._remove_partial()
            raise CheckpointError(
                f"{self.directory}: saving the checkpoint of step {step} failed "
                f"({_reason(error)}); {self._kept()}"
            ) from None
        step, self._pending = self._pending, None
        if step is not None and jax.process_count() == 1:
            folder = self.directory / str(step)
            sums = {name: list(entry) for name, entry in _checksums(folder, "").items()}
            try:
                atomic_write_text(folder / CHECKSUMS_FILE, json.dumps(sums, indent=0) + "\n")
            except OSError:
                pass  # the checkpoint is complete; it is only not verifiable

    def poll(self) -> None:
        """Finish a save that is no longer in progress (``wait`` without waiting): a failed one
        raises now rather than at the next save."""
        if self._pending is not None and not self._manager.is_saving_in_progress():
            self.wait()

    def _steps(self) -> list[int]:
        """Complete checkpoints on disk, newest first."""
        found = self.directory.glob("[0-9]*") if self.directory.is_dir() else []
        return sorted((int(p.name) for p in found if p.name.isdigit()), reverse=True)

    def _kept(self) -> str:
        steps = self._steps()
        if not steps:
            return "no checkpoint was written yet; free some space and run the same command again"
        return (f"the newest complete checkpoint, step {steps[0]}, is kept; free some space and "
                "run the same command to resume from it")  # fmt: skip

    def _remove_partial(self) -> None:
        """Delete the temporary folders of a save that failed (they may fill the disk)."""
        if jax.process_index() == 0 and self.directory.is_dir():
            for partial in self.directory.glob("*.orbax-checkpoint-tmp*"):
                _remove_tree(partial)

    def _first_intact(self, restore_one, step: int | None):
        """(step, restore_one(step)) of ``step``, or of the newest checkpoint that reads."""
        steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"{self.directory}: no checkpoint yet")
        damaged = []
        for candidate in steps:
            try:
                _verify(self.directory / str(candidate), "")
                return candidate, restore_one(candidate)
            except KeyboardInterrupt:
                raise
            except Exception as error:  # orbax and tensorstore raise many types for damage
                if isinstance(error, CheckpointError) and not isinstance(error, DamagedFiles):
                    raise
                if not isinstance(error, DamagedFiles):
                    _drop_abandoned_reads()
                damaged.append(candidate)
                reason = str(error) if isinstance(error, DamagedFiles) else _reason(error)
                print(f"warning: {self.directory / str(candidate)}: damaged checkpoint, not used "
                      f"({reason})", file=sys.stderr, flush=True)  # fmt: skip
                if self.keep is not None:  # training: new saves must not meet the damaged step
                    self._set_aside(candidate)
        raise CheckpointError(
            f"{self.directory}: no readable checkpoint (damaged: step "
            f"{', '.join(map(str, damaged))}); start again in a new workdir"
        )

    def _set_aside(self, step: int) -> None:
        """Move a damaged step out of the way of new saves (kept for inspection)."""
        source = self.directory / str(step)
        if source.exists() and jax.process_index() == 0:  # one process moves it (multi-host)
            target = self.directory / f"damaged-{step}"
            if target.exists():
                shutil.rmtree(source)  # the same step was set aside before; keep the first
            else:
                os.replace(source, target)
        self._manager.close()
        self._open()

    def restore(self, target: dict, step: int | None = None) -> tuple[int, dict, dict]:
        """(step, state, data state) of ``step`` or the newest intact checkpoint; ``target``
        gives shapes, dtypes and shardings."""
        import orbax.checkpoint as ocp

        def restore_one(candidate):
            restored = self._manager.restore(
                candidate,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()
                ),
            )
            return restored["state"], restored["data"]

        step, (state, data) = self._first_intact(restore_one, step)
        return step, state, data

    def restore_params(self, target: dict, step: int | None = None) -> dict:
        """The parameters alone at ``step`` (default: the newest intact), shaped like ``target``."""
        import orbax.checkpoint as ocp

        item = {"params": target}

        def restore_one(candidate):
            restored = self._manager.restore(
                candidate,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(
                        item=item,
                        restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                        partial_restore=True,
                    )
                ),
            )
            return restored["state"]["params"]

        return self._first_intact(restore_one, step)[1]

    def close(self) -> None:
        """Wait for pending saves and release the manager."""
        try:
            self.wait()
        finally:
            self._manager.close()


def _drop_abandoned_reads() -> None:
    """After a failed orbax restore: the CLI leaves at once after its error line (the reads
    orbax abandons are collected as late as the process's exit, see _quiet_orbax)."""
    import gc

    global abandoned_reads
    abandoned_reads = True  # (mt3.cli.main)
    _quiet_orbax()
    gc.collect()


def _quiet_orbax() -> None:
    """Mute what orbax and tensorstore print about a failed read or write, which mt3 reports in
    one line of its own (CheckpointError): "Exception ignored in <coroutine>" tracebacks of the
    reads and writes orbax abandons, "Event loop is closed" tracebacks of tensorstore callbacks
    into the closed loop of a failed save, asyncio's "exception was never retrieved" for orbax's
    tasks and orbax's ERROR log records. Everything else still reaches its usual handler."""
    import logging

    previous = sys.unraisablehook
    if getattr(previous, "mt3_quiet_orbax", False):
        return

    def from_orbax(frames) -> bool:
        return any("orbax" in frame.filename for frame in frames)

    def hook(unraisable, previous=previous):
        code = getattr(unraisable.object, "cr_code", None)
        if code is not None and "orbax" in code.co_filename:
            return
        frames = traceback.extract_tb(unraisable.exc_traceback)
        closed = isinstance(unraisable.exc_value, RuntimeError) and "loop is closed" in str(
            unraisable.exc_value
        )
        if closed and any(f.name == "call_soon_threadsafe" for f in frames):
            return
        previous(unraisable)

    def not_orbax(record: logging.LogRecord) -> bool:
        if "orbax" in record.pathname and record.levelno >= logging.ERROR:
            return False
        if record.name == "asyncio" and "orbax" in record.getMessage():
            return False
        error = record.exc_info[1] if record.exc_info else None
        return not (error and from_orbax(traceback.extract_tb(error.__traceback__)))

    hook.mt3_quiet_orbax = True
    sys.unraisablehook = hook
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(not_orbax)


def _reason(error: BaseException) -> str:
    text = str(error).split(" See full TensorStore details")[0].strip().splitlines()
    if "No space left on device" in str(error):
        return "no space left on device"
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
