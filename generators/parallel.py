"""One video on several ranks of one host (`video.parallel`): the split rules and CFG-parallel.

CFG-parallel: classifier-free guidance runs the transformer on a batch of two (unconditional, then
conditional) at every step. With two ranks each runs its half and the two noise predictions are
exchanged (`all_gather`), so both ranks step the scheduler on the same full prediction and hold the same
latents; only the transformer call is split, the rest of diffusers' pipeline (text encoding, scheduler,
callbacks) runs unchanged on every rank. Rank 0 decodes; the others stop at the latents.

`plan_split` is the pure rule check (no torch): what a host can split one video into, refusing the
impossible with a message that says what to change. `RankContext` is one rank's view of the compute
group (gloo on CPU, NCCL on GPU); torch.distributed is imported only when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from generators.base import GeneratorError

ParallelMode = Literal["none", "cfg", "cfg+ulysses"]
CFG_DEGREE = 2  # one rank per half of the guidance batch
SPLIT_ARGUMENTS = ("hidden_states", "encoder_hidden_states", "timestep", "timestep_cond", "ofs")
POSITIONAL = ("hidden_states", "encoder_hidden_states", "timestep")  # the order diffusers declares


class ParallelSplitError(GeneratorError):
    """`video.parallel` cannot split one video this way on these ranks."""


@dataclass(frozen=True)
class SplitPlan:
    """How one video is spread: CFG halves x Ulysses (heads) x Ring (sequence) = the number of ranks."""

    mode: ParallelMode
    cfg: int = 1
    ulysses: int = 1
    ring: int = 1

    @property
    def world_size(self) -> int:
        return self.cfg * self.ulysses * self.ring

    @property
    def needs_library(self) -> bool:
        """Sequence parallelism (Ulysses / Ring) comes from xDiT; CFG alone is plain torch.distributed."""
        return self.ulysses * self.ring > 1


def plan_split(mode: str, world_size: int, *, guidance: float, heads: int, latent_height: int,
               ring: int = 1) -> SplitPlan:
    """The split for `world_size` ranks under `mode`, or ParallelSplitError saying why it cannot be.

    cfg needs CFG (guidance > 1) and exactly 2 ranks; cfg+ulysses puts the rest on Ulysses, whose degree
    must divide the attention heads (30 for 2B, 48 for 5B), and 2 x ulysses x ring must divide the
    latent height (60 at 480 pixels): a 480x720 video fits 2, 4 or 6 GPUs (12 with ring 2), never 8."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ParallelSplitError(f"video.parallel: the number of GPUs must be a positive integer, got "
                                 f"{world_size!r}")
    if mode == "none":
        if world_size != 1:
            raise ParallelSplitError(
                f"video.parallel is none, so one video uses one GPU, but {world_size} were given. Set "
                "video.parallel: cfg (2 GPUs) or cfg+ulysses (4 or 6), or start one `xiaoai worker --gpu N` "
                "per GPU to render several videos at once")
        return SplitPlan("none")
    if mode not in ("cfg", "cfg+ulysses"):
        raise ParallelSplitError(f"video.parallel must be none, cfg or cfg+ulysses, got {mode!r}")
    if guidance <= 1:
        raise ParallelSplitError(
            f"video.parallel {mode} splits the classifier-free-guidance batch, but guidance is {guidance:g} "
            "(<= 1 means no guidance, a batch of one). Set video.sampling.guidance above 1 (default 6) or "
            "video.parallel: none")
    if mode == "cfg":
        if world_size != CFG_DEGREE:
            raise ParallelSplitError(
                f"video.parallel cfg renders one video on exactly 2 GPUs (one per guidance half), got "
                f"{world_size}. Use --gpus with two cards, or video.parallel: cfg+ulysses for 4 or 6")
        return SplitPlan("cfg", cfg=CFG_DEGREE)
    if ring < 1 or world_size % (CFG_DEGREE * ring) or world_size < 2 * CFG_DEGREE * ring:
        raise ParallelSplitError(
            f"video.parallel cfg+ulysses needs 2 x ulysses x ring GPUs with ulysses >= 2 (4, 6, ...), got "
            f"{world_size} (ring {ring})")
    ulysses = world_size // (CFG_DEGREE * ring)
    if heads % ulysses:
        raise ParallelSplitError(
            f"video.parallel cfg+ulysses on {world_size} GPUs gives Ulysses degree {ulysses}, which does not "
            f"divide the model's {heads} attention heads; use {_fitting(heads, latent_height, ring)} GPUs")
    if latent_height % (CFG_DEGREE * ulysses * ring):
        raise ParallelSplitError(
            f"video.parallel cfg+ulysses on {world_size} GPUs: 2 x ulysses x ring = "
            f"{CFG_DEGREE * ulysses * ring} does not divide the latent height {latent_height}; use "
            f"{_fitting(heads, latent_height, ring)} GPUs")
    return SplitPlan("cfg+ulysses", cfg=CFG_DEGREE, ulysses=ulysses, ring=ring)


MAX_HOST_GPUS = 8  # one host: the ranks of one video share NVLink


def _fitting(heads: int, latent_height: int, ring: int) -> str:
    """The GPU counts of one host that this model and size can be split over, as words."""
    counts = [str(CFG_DEGREE * u * ring) for u in range(2, MAX_HOST_GPUS + 1)
              if CFG_DEGREE * u * ring <= MAX_HOST_GPUS and heads % u == 0
              and latent_height % (CFG_DEGREE * u * ring) == 0]
    if not counts:
        return "no other number of"
    return counts[0] if len(counts) == 1 else ", ".join(counts[:-1]) + " or " + counts[-1]


@dataclass
class RankContext:
    """This rank in the compute group that renders one video together (already initialised)."""

    rank: int
    world_size: int
    device: str  # "cpu" (gloo) or "cuda:N" (NCCL): where the exchanged tensors live
    group: Any = None  # the torch.distributed group of the exchanges; None = the default group

    @property
    def leader(self) -> bool:
        """Rank 0 reports progress, decides cancellation and decodes the video."""
        return self.rank == 0

    def share_int(self, value: int) -> int:
        """Rank 0's `value` on every rank (one tiny broadcast)."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([int(value) if self.leader else 0], dtype=torch.int64, device=self.device)
        dist.broadcast(tensor, src=0, group=self.group)
        return int(tensor.item())

    def shared_stop(self, should_stop: Any) -> Any:
        """A `should_stop` every rank calls at the same points; all get rank 0's answer, so the ranks
        stop together (a rank leaving alone would leave the others waiting in the next exchange)."""

        def agreed() -> bool:
            mine = bool(should_stop()) if self.leader and should_stop is not None else False
            return bool(self.share_int(int(mine)))

        return agreed


class CfgSplitForward:
    """Replaces `transformer.forward` on one rank: runs this rank's half of the guidance batch and
    gathers every rank's half, so the pipeline sees the whole batch's prediction as if computed here.

    A batch that is not the two guidance halves (no CFG) runs whole on every rank."""

    def __init__(self, forward: Any, ranks: RankContext) -> None:
        self.forward = forward
        self.ranks = ranks

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch
        import torch.distributed as dist

        named = dict(zip(POSITIONAL, args, strict=False)) | kwargs
        hidden = named["hidden_states"]
        world, rank = self.ranks.world_size, self.ranks.rank
        if hidden.shape[0] != world:
            return self.forward(**named)
        for name in SPLIT_ARGUMENTS:
            value = named.get(name)
            if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == world:
                named[name] = value[rank:rank + 1]
        output = self.forward(**named)
        sample = output[0] if isinstance(output, tuple) else output.sample
        sample = sample.contiguous()
        halves = [torch.empty_like(sample) for _ in range(world)]
        dist.all_gather(halves, sample, group=self.ranks.group)
        whole = torch.cat(halves, dim=0)
        if isinstance(output, tuple):
            return (whole, *output[1:])
        output.sample = whole
        return output


def install_cfg_split(transformer: Any, ranks: RankContext) -> None:
    """Hook `transformer` (after every speed switch, so the split wraps the compiled/cached model)."""
    if isinstance(getattr(transformer, "forward", None), CfgSplitForward):
        return
    transformer.forward = CfgSplitForward(transformer.forward, ranks)
