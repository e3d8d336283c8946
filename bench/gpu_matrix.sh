#!/usr/bin/env bash
# The benchmark matrix behind BENCHMARKS.md, for one GPU machine (the device tool's, or yours).
# usage: bash bench/gpu_matrix.sh PHASE...  (phases: see the case below)
# Writes OUT/video.jsonl + OUT/video.md (OUT defaults to ./bench-out). Wheels in .whl/ are installed first
# when the machine lacks diffusers (the device tool's image has torch but not diffusers/torchao): diffusers,
# torchao, loguru, pydantic, pydantic_core, ruamel.yaml, annotated-types, typing-inspection, typing_extensions.
# FA3 rows need tokenspeed-fa3 on PYTHONPATH (63 MB: install it first, e.g. into /tmp/site).
# Round 3 (a device call carries 64 MiB): FA3's wheel alone in a first call, then comfy-kitchen (36 MB without
# its ROCm library, lib/hip dropped from the wheel) + cache-dit + the wheels above, then imageio-ffmpeg (29 MB,
# for the MP4 stage) in a third, each installed into its own --target folder, all three on PYTHONPATH.
set -u
OUT=${OUT:-bench-out}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=${PYTHONPATH:-}:$PWD
WHEELS=${WHEELS:-.whl}
if ! python3 -c "import diffusers" 2>/dev/null && [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
B="python3 -m bot bench video --out $OUT --ref-dir /tmp/xiaoai-refs"
run() { local limit=$1; shift; echo "== $*"; timeout "$limit" "$@" 2>&1 | grep -v -e 'Loading' -e 'it/s]' -e '^\s*$'; }
for phase in "$@"; do
  case $phase in
    setup) nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        echo "== model caches"; ls -d ~/.cache/modelscope/hub/*/* ~/.cache/huggingface/hub/* 2>/dev/null | head ;;
    fp8) run 420 $B --build 2b --model-dir /tmp/m2b --rows plain,fp8,compile,fp8-compile
        run 120 $B --build 2b --model-dir /tmp/m2b --steps 12 --rows fbc-0.1 ;;
    accept)  # BENCHMARKS.md's headline rows: one process per block, anchors side by side
        BEST=${BEST:-quantization=fp8_dynamic,compile=blocks}
        run 170 $B --build 2b --model-dir /tmp/m2b --rows "plain,compile,fp8-compile${EXTRA2B:+,$EXTRA2B}"
        echo "== second start (inductor's cache from the run above, new process)"
        run 70 $B --build 2b --model-dir /tmp/m2b --row "second-start:$BEST"
        echo "== low VRAM, a process of its own"
        run 90 $B --build 2b --model-dir /tmp/m2b --rows group-offload-4g
        run 260 $B --build 5b --model-dir /tmp/m5b --steps 4 --rows "plain,compile,fp8-compile${EXTRA5B:+,$EXTRA5B}" ;;
    2b-eager) run 240 $B --build 2b --model-dir /tmp/m2b \
        --rows plain,fused,attn-flash,attn-cudnn,attn-efficient,attn-sage,fp8,fp8-sage \
        --vae untiled,tile=480x360,tile=240x720,channels_last,bf16 ;;
    2b-fast) run 170 $B --build 2b --model-dir /tmp/m2b --rows plain,attn-sage,compile-sage,group-offload-4g
        echo "== second start (inductor's cache from the run above, new process)"
        run 60 $B --build 2b --model-dir /tmp/m2b --row second-start-compile-sage:compile=blocks,attention=sage ;;
    2b-compile) run 200 $B --build 2b --model-dir /tmp/m2b --rows plain,compile,compile-sage,compile-cudnn ;;
    2b-memory) run 150 $B --build 2b --model-dir /tmp/m2b \
        --rows model-offload,group-offload-4g,seq-offload-4g,gpu-4g:cap_gib=4 ;;
    2b-cache) run 150 $B --build 2b --model-dir /tmp/m2b --steps 16 --rows plain,fbc-0.05,fbc-0.1 ;;
    5b) run 200 $B --build 5b --model-dir /tmp/m5b --steps 4 --rows "plain,${BEST5:-compile-sage}" ;;
    fa3) run 120 python3 -m bench.fa3_kernel --out "$OUT" ;;
    speed-2b)  # the 50-step schedule: plain anchor, today's fp8-compile, FA3 (preset default), caches
        run 480 $B --build 2b --model-dir /tmp/m2b --steps 50 --budget-s 400 \
          --rows plain,fp8-compile,preset-default,fp8-compile-fa3fp8,fp8-compile-fa3-pab,preset-fast \
          --vae "${VAE-untiled,compile+untiled}"
        echo "== second start of preset fast (inductor's cache from the run above, new process)"
        run 100 $B --build 2b --model-dir /tmp/m2b --steps 50 --rows "" --row second-start-fast:preset=fast ;;
    speed-5b) run 560 $B --build 5b --model-dir /tmp/m5b --steps 50 --budget-s 420 \
          --rows "plain,preset-fast,preset-default${EXTRA5B:+,$EXTRA5B}" ;;
    image) I="python3 -m bot bench image --out $OUT"
        run 300 $I --build schnell --model-dir /tmp/flux-schnell --rows plain,fp8-compile-fa3
        rm -rf /tmp/flux-schnell
        run 300 $I --build dev --model-dir /tmp/flux-dev --rows plain,fp8-compile-fa3 ;;
    round3-kernels) run 240 python3 -m bench.attn8 --out "$OUT" ;;  # FA3 + comfy-kitchen on PYTHONPATH
    round3-2b)  # BENCHMARKS.md round 3: anchor, presets, caches on a fixed schedule, 2x2 VAE tiles
        run 480 $B --build 2b --model-dir /tmp/m2b --steps 50 --budget-s 400 --rows plain,preset-default \
          --row preset-fast:preset=fast --row taylorseer2:taylorseer=2 --row cachedit2:cachedit=2 \
          --row cachedit2-default:preset=default,cachedit=2 --vae tile=288x480
        echo "== the first video after a restart, one process per preset (inductor's cache from above)"
        run 90 $B --model-path /tmp/m2b --steps 50 --rows , --row first-fast:preset=fast,warmup_steps=0
        run 90 $B --model-path /tmp/m2b --steps 50 --rows , --row first-default:preset=default,warmup_steps=0 ;;
    round3b-2b)  # round 3, second session: TaylorSeer named on attn1, cache-dit over preset default, MP4
        run 560 $B --build 2b --model-dir /tmp/m2b --steps 50 --budget-s 480 --rows plain,preset-default \
          --row preset-fast:preset=fast --row taylorseer2:taylorseer=2 \
          --row cachedit2-default:preset=default,cachedit=2 --row cachedit3-default:preset=default,cachedit=3 \
          --vae channels_last_3d,channels_last_3d+tile=288x480 ;;
    round3b-5b)  # the same for 5B: anchor, presets, cache-dit over preset default
        run 590 $B --build 5b --model-dir /tmp/m5b --steps 50 --budget-s 520 --rows plain,preset-default \
          --row preset-fast:preset=fast --row cachedit3-default:preset=default,cachedit=3 ;;
    round3c-2b)  # round 3, third session: the shipped preset fast (cache-dit on the transformer from the load)
        run 400 $B --build 2b --model-dir /tmp/m2b --steps 50 --budget-s 340 --rows plain,preset-default \
          --row preset-fast:preset=fast
        echo "== the first video after a restart (inductor's cache from above)"
        run 100 $B --model-path /tmp/m2b --steps 50 --rows , --row first-fast:preset=fast,warmup_steps=0 ;;
    round3c-5b)  # the same for 5B (preset fast: every 4th step in full) and its first video after a restart
        run 480 $B --build 5b --model-dir /tmp/m5b --steps 50 --budget-s 420 --rows plain \
          --row preset-fast:preset=fast
        echo "== the first video after a restart (inductor's cache from above)"
        run 110 $B --model-path /tmp/m5b --steps 50 --rows , --row first-fast:preset=fast,warmup_steps=0 ;;
    round3c-i2v)  # 5B-I2V: plain anchor, preset fast, the first video after a restart
        run 420 $B --build 5b-i2v --model-dir /tmp/m5bi2v --steps 50 --budget-s 360 --rows plain \
          --row preset-fast:preset=fast
        run 110 $B --model-path /tmp/m5bi2v --steps 50 --rows , --row first-fast:preset=fast,warmup_steps=0 ;;
    round3c-15-plain)  # CogVideoX1.5-5B, 768x1360x81, 50 steps: the anchor alone (~7.8 s a step, one call)
        run 590 $B --build 1.5-5b --model-dir /tmp/m15 --steps 50 --rows plain ;;
    round3c-15-fast)  # the shipped fast against the anchor's reference above (same machine, next call):
        # 50 steps, because its schedule is by step (8 full, then every 4th); fewer would hide the cache
        run 400 $B --model-path /tmp/m15 --steps 50 --rows , --row preset-fast:preset=fast
        run 180 $B --model-path /tmp/m15 --steps 50 --rows , --row first-fast:preset=fast,warmup_steps=0 ;;
    5b-fast) run 110 $B --build 5b --model-dir /tmp/m5b --steps 3 --rows compile-sage ;;
    photo)  # 图生视频 and CogVideoX1.5: anchor vs presets, one process per model (random weights, released shapes)
        run 400 $B --build 5b-i2v --model-dir /tmp/m5bi2v --steps 50 --budget-s 330 \
          --rows plain,preset-default,preset-fast                      # 480x720x49, the photo fitted by crop
        rm -rf /tmp/m5bi2v
        run 560 $B --build 1.5-5b --model-dir /tmp/m15 --steps 10 --budget-s 480 \
          --rows plain,preset-default,preset-fast                      # 768x1360x81 (latent frames padded to 22)
        rm -rf /tmp/m15
        run 560 $B --build 1.5-5b-i2v --model-dir /tmp/m15i2v --steps 10 --budget-s 480 \
          --rows plain,preset-default,preset-fast ;;
    *) echo "unknown phase $phase" ;;
  esac
done
