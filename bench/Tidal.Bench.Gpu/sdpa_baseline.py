"""PyTorch SDPA decode attention on the Llama-3-8B shape, the baseline for `Tidal.Bench gpu`.

One query token, 32 query heads sharing 8 KV heads (enable_gqa), d = 128, fp16 cache; mean of CUDA-event timings.
Usage: python3 bench/Tidal.Bench.Gpu/sdpa_baseline.py
"""
import torch
import torch.nn.functional as F

torch.manual_seed(0)
q = torch.randn(1, 32, 1, 128, device="cuda", dtype=torch.float16)
print(f"pytorch {torch.__version__} sdpa decode on {torch.cuda.get_device_name()}")
for n in (8192, 32768, 131072):
    k = torch.randn(1, 8, n, 128, device="cuda", dtype=torch.float16)
    v = torch.randn(1, 8, n, 128, device="cuda", dtype=torch.float16)
    for _ in range(10):
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 200
    start.record()
    for _ in range(reps):
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    end.record()
    torch.cuda.synchronize()
    us = start.elapsed_time(end) * 1000 / reps
    gbps = 2 * 8 * n * 128 * 2 / (us * 1e3)
    print(f"sdpa dense attention @ {n // 1024}K: {us:8.1f} us {gbps:8.0f} GB/s")
