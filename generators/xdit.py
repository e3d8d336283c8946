"""`video.parallel: cfg+ulysses` through xDiT (`pip install xfuser==0.7.0`, CUDA GPUs only).

xDiT's `xFuserCogVideoXPipeline` wraps diffusers' pipeline and splits each attention over the ranks
(Ulysses: heads; Ring: sequence) besides the CFG halves; diffusers 0.42 has no such plan for CogVideoX.
It builds its own process groups on top of the already initialised default group (RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT in the environment, set by the rank group), so this module only maps our
settings onto its engine config. Not run in CI (it refuses to start without a GPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generators.base import GeneratorError
from generators.parallel import SplitPlan

XDIT_HINT = "pip install xfuser==0.7.0 (xDiT; CUDA GPUs only), or set video.parallel: cfg"


def xdit_unavailable_reason() -> str | None:
    """Why the xDiT path cannot run here, or None."""
    import torch

    if not torch.cuda.is_available():
        return "video.parallel cfg+ulysses needs CUDA GPUs (xDiT has no CPU path)"
    try:
        import xfuser  # noqa: F401
    except ImportError:
        return f"video.parallel cfg+ulysses needs xDiT: {XDIT_HINT}"
    return None


def load_xdit_pipeline(folder: Path, dtype: Any, plan: SplitPlan, device: str) -> Any:
    """The CogVideoX folder as an xFuser pipeline split per `plan`, on `device`; GeneratorError with
    the fix where xDiT or a GPU is missing."""
    why = xdit_unavailable_reason()
    if why is not None:
        raise GeneratorError(why)
    from xfuser import xFuserArgs, xFuserCogVideoXPipeline

    engine_args = xFuserArgs(model=str(folder), ulysses_degree=plan.ulysses, ring_degree=plan.ring,
                             use_cfg_parallel=plan.cfg > 1, pipefusion_parallel_degree=1,
                             data_parallel_degree=1, tensor_parallel_degree=1)
    engine_config, _input_config = engine_args.create_config()
    pipe = xFuserCogVideoXPipeline.from_pretrained(pretrained_model_name_or_path=str(folder),
                                                   engine_config=engine_config, torch_dtype=dtype)
    return pipe.to(device)
