#!/usr/bin/python3
"""An independent PyTorch oracle for FlowHN.NET's models.

Builds tiny Transformer, Mamba, Hymba and FlowHN (split none; fac with the prefix context) language models in
plain PyTorch (float64), written from the paper (arXiv 2505.19472 and the Mamba, Jamba and Hymba designs it
builds on) and the weight names and layouts documented in the README, not from the C# code. Writes one
safetensors file with, per model: its weights, the logits and mean cross-entropy loss of one batch, the gradient
of every weight, and the losses and gradient norms of three AdamW steps with the project's defaults (betas
0.9/0.95, eps 1e-8, weight decay 0.1 on projection matrices and conv weights only, clipping at global norm 1.0).
tests/FlowHN.Tests/Models/TorchOracleTests.cs compares the C# models with it element by element.

Needs Debian's python3-torch (apt-get install python3-torch); nothing else. Run from the repository root:
    /usr/bin/python3 tools/make_torch_fixture.py [output path]
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

EPS = 1e-6            # RMSNorm eps everywhere (paper)
ROPE_BASE = 10000.0
DIM, HEADS, KV_HEADS, MLP, VOCAB = 20, 2, 1, 16, 16   # dim 20: dt_rank = ceil(20/16) = 2, so the dt norm is not a sign
STATE, CONV, EXPAND = 4, 4, 2
BATCH, SEQ = 2, 8
FAC_ATTENTION_TOKENS = 5                                # of 8: block 1's window wraps around the ring
LR, BETAS, ADAM_EPS, WEIGHT_DECAY, MAX_NORM, STEPS = 0.02, (0.9, 0.95), 1e-8, 0.1, 1.0, 3
OUTPUT = "tests/FlowHN.Tests/Fixtures/torch_reference.safetensors"

# Model configurations in the checkpoints' config.json form (ModelConfig); RoPE is left to the architecture.
BASE = {"VocabSize": VOCAB, "Dim": DIM, "Heads": HEADS, "KvHeads": KV_HEADS, "MlpHidden": MLP, "MambaState": STATE,
        "MambaConvWidth": CONV, "MambaExpand": EXPAND, "NormEps": EPS}
MODELS = {
    "transformer": dict(BASE, Arch="transformer", Layers=2),
    "mamba": dict(BASE, Arch="mamba", Layers=1),
    "hymba": dict(BASE, Arch="hymba", Layers=1),
    "flowhn_none": dict(BASE, Arch="flowhn", Layers=1, Split="None", SplitContext="Local"),
    "flowhn_fac_prefix": dict(BASE, Arch="flowhn", Layers=2, Split="FlopAwareCirculating", SplitContext="Prefix",
                              SplitRatio=str(FAC_ATTENTION_TOKENS / SEQ)),
}


# ---- building blocks ----------------------------------------------------------------------------------------

def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def linear(x, w):  # w [out, in], no bias
    return x @ w.t()


def swiglu_mlp(p, name, x):
    return linear(F.silu(linear(x, p[name + ".gate_proj.weight"])) * linear(x, p[name + ".up_proj.weight"]),
                  p[name + ".down_proj.weight"])


def rope(x, positions):
    """Llama's rotary embedding (rotate_half form): pairs (i, i + hd/2) turned by position * base^(-2i/hd)."""
    hd = x.shape[-1]
    inv_freq = 1.0 / ROPE_BASE ** (torch.arange(0, hd, 2) / hd)
    angles = positions[:, None].to(torch.float64) * inv_freq[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], -1)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1)[None, :, None, :]
    rotated = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rotated * sin


def attention(p, name, xq, xk, q_pos, k_pos, use_rope, out_proj=True):
    """Grouped-query attention; key j is visible to query i when k_pos[j] <= q_pos[i]."""
    b, lq, lk, hd = xq.shape[0], xq.shape[1], xk.shape[1], DIM // HEADS
    q = linear(xq, p[name + ".q_proj.weight"]).view(b, lq, HEADS, hd)
    k = linear(xk, p[name + ".k_proj.weight"]).view(b, lk, KV_HEADS, hd)
    v = linear(xk, p[name + ".v_proj.weight"]).view(b, lk, KV_HEADS, hd)
    if use_rope:
        q, k = rope(q, q_pos), rope(k, k_pos)
    k = k.repeat_interleave(HEADS // KV_HEADS, dim=2)   # query head j reads KV head j // (HEADS / KV_HEADS)
    v = v.repeat_interleave(HEADS // KV_HEADS, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
    visible = k_pos[None, :] <= q_pos[:, None]
    scores = scores.masked_fill(~visible, float("-inf"))
    out = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, lq, HEADS * hd)
    return linear(out, p[name + ".o_proj.weight"]) if out_proj else out


def mamba(p, name, x, inner, out_proj=True):
    """Mamba-1 with RMSNorm on dt, B and C (Jamba's variant), as a plain loop over time (selective_scan_ref)."""
    length = x.shape[1]
    xz = linear(x, p[name + ".in_proj.weight"])
    xs, z = xz[..., :inner], xz[..., inner:]
    conv_w = p[name + ".conv1d.weight"]                  # [inner, width]: depthwise, causal
    u = F.conv1d(xs.transpose(1, 2), conv_w.unsqueeze(1), p[name + ".conv1d.bias"], padding=CONV - 1, groups=inner)
    u = F.silu(u[..., :length].transpose(1, 2))
    dt_rank = math.ceil(DIM / 16)
    dbc = linear(u, p[name + ".x_proj.weight"])
    dt, b, c = dbc.split([dt_rank, STATE, STATE], dim=-1)
    dt = rms_norm(dt, p[name + ".dt_layernorm.weight"])
    b = rms_norm(b, p[name + ".b_layernorm.weight"])
    c = rms_norm(c, p[name + ".c_layernorm.weight"])
    delta = F.softplus(linear(dt, p[name + ".dt_proj.weight"]) + p[name + ".dt_proj.bias"])
    a = -torch.exp(p[name + ".A_log"])                   # [inner, state]
    h = torch.zeros(x.shape[0], inner, STATE)
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, t, :, None] * a) * h + delta[:, t, :, None] * b[:, t, None, :] * u[:, t, :, None]
        ys.append((h * c[:, t, None, :]).sum(-1))
    y = (torch.stack(ys, 1) + u * p[name + ".D"]) * F.silu(z)
    return linear(y, p[name + ".out_proj.weight"]) if out_proj else y


def decoder_layer(p, name, x, mixer_name, mixer):
    h = x + mixer(rms_norm(x, p[f"{name}.{mixer_name}_norm.weight"]))
    return h + swiglu_mlp(p, name + ".mlp", rms_norm(h, p[name + ".mlp_norm.weight"]))


def hymba_mixer(p, name, x, positions):
    """Parallel heads: attention heads and SSM heads (d_inner = d) on the same tokens, each output RMS-normalised,
    averaged, then one output projection."""
    attended = rms_norm(attention(p, name + ".attn", x, x, positions, positions, False, out_proj=False),
                        p[name + ".attn_out_norm.weight"])
    scanned = rms_norm(mamba(p, name + ".mamba", x, DIM, out_proj=False), p[name + ".ssm_out_norm.weight"])
    return linear(0.5 * (attended + scanned), p[name + ".out_proj.weight"])


# ---- the models ---------------------------------------------------------------------------------------------

def sequential_lm(p, cfg, ids):
    positions = torch.arange(ids.shape[1])
    x = p["embed.weight"][ids]
    for i in range(cfg["Layers"]):
        name = f"layers.{i}"
        if cfg["Arch"] == "transformer":
            x = decoder_layer(p, name, x, "attn", lambda n: attention(p, name + ".attn", n, n, positions, positions, True))
        elif cfg["Arch"] == "mamba":
            x = decoder_layer(p, name, x, "mamba", lambda n: mamba(p, name + ".mamba", n, EXPAND * DIM))
        else:
            x = decoder_layer(p, name, x, "hymba", lambda n: hymba_mixer(p, name + ".hymba", n, positions))
    return linear(rms_norm(x, p["final_norm.weight"]), p["lm_head.weight"])


def fac_window(block, length, tokens):
    """FAC_Split: attention's window walks backwards block by block around the sequence taken as a ring."""
    return sorted((length - tokens * (block + 1) + j) % length for j in range(tokens))


def attention_branch(p, name, x_tokens, x_all, q_pos, k_pos):
    """A pre-norm attention decoder layer whose queries are its own tokens and whose keys and values come from
    every token of x_all (the prefix context); the mask by position keeps it causal."""
    norm = p[name + ".attn_norm.weight"]
    h = x_tokens + attention(p, name + ".attn", rms_norm(x_tokens, norm), rms_norm(x_all, norm), q_pos, k_pos, False)
    return h + swiglu_mlp(p, name + ".mlp", rms_norm(h, p[name + ".mlp_norm.weight"]))


def ssm_branch(p, name, x_tokens):
    """A Mamba decoder layer over the branch's tokens in order (gaps between them are simply skipped)."""
    return decoder_layer(p, name, x_tokens, "mamba", lambda n: mamba(p, name + ".mamba", n, EXPAND * DIM))


def flowhn_block(p, cfg, i, x):
    name = f"blocks.{i}"
    length = x.shape[1]
    everything = torch.arange(length)
    if cfg["Split"] == "None":
        attended = attention_branch(p, name + ".attn_branch", x, x, everything, everything)
        scanned = ssm_branch(p, name + ".ssm_branch", x)
        y = x + linear(torch.cat([scanned, attended], -1), p[name + ".fusion.w_b.weight"])   # W_b [ssm ; attn]
    else:
        window = fac_window(i, length, FAC_ATTENTION_TOKENS)
        rest = [t for t in range(length) if t not in window]
        a_pos, s_pos = torch.tensor(window), torch.tensor(rest)
        attended = attention_branch(p, name + ".attn_branch", x[:, a_pos], x, a_pos, everything)
        scanned = ssm_branch(p, name + ".ssm_branch", x[:, s_pos])
        merged = torch.zeros_like(x)
        merged[:, a_pos] = attended
        merged[:, s_pos] = scanned
        y = x + linear(merged, p[name + ".fusion.w_b.weight"])
    return y + linear(rms_norm(y, p[name + ".fusion.norm.weight"]), p[name + ".fusion.w_f.weight"])


def flowhn_lm(p, cfg, ids):
    x = p["embed.weight"][ids]
    for i in range(cfg["Layers"]):
        x = flowhn_block(p, cfg, i, x)
    return linear(rms_norm(x, p["final_norm.weight"]), p["lm_head.weight"])


def forward(p, cfg, ids):
    return flowhn_lm(p, cfg, ids) if cfg["Arch"] == "flowhn" else sequential_lm(p, cfg, ids)


# ---- weights: names and shapes from the README, values of order one -----------------------------------------

def mamba_shapes(name, inner, out_proj=True):
    r = math.ceil(DIM / 16)
    shapes = {name + ".in_proj.weight": [2 * inner, DIM], name + ".conv1d.weight": [inner, CONV],
            name + ".conv1d.bias": [inner], name + ".x_proj.weight": [r + 2 * STATE, inner],
            name + ".dt_layernorm.weight": [r], name + ".b_layernorm.weight": [STATE],
            name + ".c_layernorm.weight": [STATE], name + ".dt_proj.weight": [inner, r], name + ".dt_proj.bias": [inner],
            name + ".A_log": [inner, STATE], name + ".D": [inner]}
    if out_proj:
        shapes[name + ".out_proj.weight"] = [DIM, inner]
    return shapes


def attention_shapes(name, out_proj=True):
    hd = DIM // HEADS
    shapes = {name + ".q_proj.weight": [DIM, DIM], name + ".k_proj.weight": [KV_HEADS * hd, DIM],
              name + ".v_proj.weight": [KV_HEADS * hd, DIM]}
    if out_proj:
        shapes[name + ".o_proj.weight"] = [DIM, DIM]
    return shapes


def layer_shapes(name, mixer_name, mixer):
    return {f"{name}.{mixer_name}_norm.weight": [DIM], **mixer, name + ".mlp_norm.weight": [DIM],
            name + ".mlp.gate_proj.weight": [MLP, DIM], name + ".mlp.up_proj.weight": [MLP, DIM],
            name + ".mlp.down_proj.weight": [DIM, MLP]}


def weight_shapes(cfg):
    shapes = {"embed.weight": [VOCAB, DIM]}
    for i in range(cfg["Layers"]):
        if cfg["Arch"] == "transformer":
            shapes.update(layer_shapes(f"layers.{i}", "attn", attention_shapes(f"layers.{i}.attn")))
        elif cfg["Arch"] == "mamba":
            shapes.update(layer_shapes(f"layers.{i}", "mamba", mamba_shapes(f"layers.{i}.mamba", EXPAND * DIM)))
        elif cfg["Arch"] == "hymba":
            h = f"layers.{i}.hymba"
            shapes.update(layer_shapes(f"layers.{i}", "hymba", {
                **attention_shapes(h + ".attn", out_proj=False), **mamba_shapes(h + ".mamba", DIM, out_proj=False),
                h + ".attn_out_norm.weight": [DIM], h + ".ssm_out_norm.weight": [DIM], h + ".out_proj.weight": [DIM, DIM]}))
        else:
            b = f"blocks.{i}"
            shapes.update(layer_shapes(b + ".attn_branch", "attn", attention_shapes(b + ".attn_branch.attn")))
            shapes.update(layer_shapes(b + ".ssm_branch", "mamba", mamba_shapes(b + ".ssm_branch.mamba", EXPAND * DIM)))
            fused = 2 * DIM if cfg["Split"] == "None" else DIM
            shapes.update({b + ".fusion.w_b.weight": [DIM, fused], b + ".fusion.norm.weight": [DIM],
                           b + ".fusion.w_f.weight": [DIM, DIM]})
    shapes.update({"final_norm.weight": [DIM], "lm_head.weight": [VOCAB, DIM]})
    return shapes


def initial_value(name, shape, gen):
    normal = torch.randn(shape, generator=gen)
    if name.endswith("norm.weight") or name.endswith(".D"):
        return 1 + 0.2 * normal
    if name.endswith("A_log"):     # log(1..N) per channel (Mamba's S4D-real init), perturbed per channel
        return torch.log(torch.arange(1, shape[1] + 1, dtype=torch.float64))[None, :] + 0.1 * normal
    if name.endswith("dt_proj.bias"):  # softplus^-1 of dt log-uniform in [1e-3, 1e-1] (Mamba's init)
        dt = torch.exp(math.log(1e-3) + torch.rand(shape, generator=gen) * (math.log(1e-1) - math.log(1e-3)))
        return dt + torch.log(-torch.expm1(-dt))
    if name.endswith("conv1d.bias") or name == "embed.weight":
        return 0.5 * normal
    return normal / math.sqrt(shape[-1])  # matrices: unit-variance outputs, so attention is far from uniform


def decays(name, shape):
    """AdamW weight decay on projection matrices and conv weights only (not norms, embedding, biases, A_log, D)."""
    return len(shape) == 2 and name != "embed.weight" and not name.endswith("A_log")


# ---- fixture ------------------------------------------------------------------------------------------------

def run_model(key, cfg, gen, ids, targets, out):
    shapes = weight_shapes(cfg)
    # Weights are rounded to float32 first, so both sides start from exactly the same values.
    p = {n: initial_value(n, s, gen).to(torch.float32).to(torch.float64).requires_grad_() for n, s in shapes.items()}
    logits = forward(p, cfg, ids)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    loss.backward()
    for n, t in p.items():
        out[f"{key}.weight.{n}"] = t.detach()
        out[f"{key}.grad.{n}"] = t.grad.detach()
    out[f"{key}.logits"] = logits.detach()
    out[f"{key}.loss"] = loss.detach().reshape(1)

    params = {n: t.detach().clone().requires_grad_() for n, t in p.items()}
    optimizer = torch.optim.AdamW(
        [{"params": [t for n, t in params.items() if decays(n, shapes[n])], "weight_decay": WEIGHT_DECAY},
         {"params": [t for n, t in params.items() if not decays(n, shapes[n])], "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=ADAM_EPS)
    losses, norms = [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        step_loss = F.cross_entropy(forward(params, cfg, ids).reshape(-1, VOCAB), targets.reshape(-1))
        step_loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)))
        optimizer.step()
        losses.append(float(step_loss))
    with torch.no_grad():
        losses.append(float(F.cross_entropy(forward(params, cfg, ids).reshape(-1, VOCAB), targets.reshape(-1))))
    out[f"{key}.adamw.losses"] = torch.tensor(losses)        # steps 1..3, then after the third update
    out[f"{key}.adamw.grad_norms"] = torch.tensor(norms)     # before clipping
    print(f"{key:18s} {sum(t.numel() for t in p.values()):6d} weights  loss {float(loss):.6f}  "
          f"AdamW losses {' '.join(f'{v:.6f}' for v in losses)}")


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        values = t.detach().reshape(-1).tolist()
        data = struct.pack(f"<{len(values)}f", *values)   # rounds each float64 to the nearest float32
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    gen = torch.Generator().manual_seed(20250519)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
    ids, targets = tokens[:, :-1], tokens[:, 1:]
    out = {"tokens.inputs": ids.to(torch.float64), "tokens.targets": targets.to(torch.float64)}
    for key, cfg in MODELS.items():
        run_model(key, cfg, gen, ids, targets, out)
    metadata = {"models": json.dumps(MODELS), "adamw": json.dumps(
        {"lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": ADAM_EPS, "weight_decay": WEIGHT_DECAY,
         "max_grad_norm": MAX_NORM, "steps": STEPS}), "torch": torch.__version__}
    path = sys.argv[1] if len(sys.argv) > 1 else OUTPUT
    write_safetensors(path, out, metadata)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
