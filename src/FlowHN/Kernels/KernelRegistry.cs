using System.Reflection;
using FlowHN.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// The kernel families of one owner on a device, each created (and its kernels loaded) on first use. The owner
/// gives the scratch-memory policy. Several registries on one device share ILGPU's compiled-kernel cache, so a
/// second one loads its kernels without compiling them again.
/// </summary>
internal sealed class KernelRegistry : IDisposable
{
    private readonly Lazy<ElementwiseLauncher> elementwise;
    private readonly Lazy<ReduceLauncher> reduce;
    private readonly Lazy<NormLauncher> norm;
    private readonly Lazy<EmbeddingLauncher> embedding;
    private readonly Lazy<CrossEntropyLauncher> crossEntropy;
    private readonly Lazy<OptimLauncher> optim;
    private readonly Lazy<GemmLauncher> gemm;
    private readonly Lazy<AttentionLauncher> attention;
    private readonly Lazy<AttentionGemmLauncher> attentionGemm;
    private readonly Lazy<RopeLauncher> rope;
    private readonly Lazy<RoutingLauncher> routing;
    private readonly Lazy<CausalConvLauncher> causalConv;
    private readonly Lazy<SelectiveScanLauncher> selectiveScan;
    private readonly Lazy<SsdLauncher> ssd;

    public KernelRegistry(ComputeDevice device, IScratchMemory scratch)
    {
        elementwise = new(() => new ElementwiseLauncher(device, scratch));
        reduce = new(() => new ReduceLauncher(device, scratch));
        norm = new(() => new NormLauncher(device, scratch, reduce));
        embedding = new(() => new EmbeddingLauncher(device, scratch));
        crossEntropy = new(() => new CrossEntropyLauncher(device, scratch));
        optim = new(() => new OptimLauncher(device, scratch));
        gemm = new(() => new GemmLauncher(device, scratch, elementwise));
        attention = new(() => new AttentionLauncher(device, scratch));
        attentionGemm = new(() => new AttentionGemmLauncher(device, scratch, gemm, elementwise));
        rope = new(() => new RopeLauncher(device, scratch));
        routing = new(() => new RoutingLauncher(device, scratch));
        causalConv = new(() => new CausalConvLauncher(device, scratch));
        selectiveScan = new(() => new SelectiveScanLauncher(device, scratch));
        ssd = new(() => new SsdLauncher(device, scratch));
    }

    public ElementwiseLauncher Elementwise => elementwise.Value;
    public ReduceLauncher Reduce => reduce.Value;
    public NormLauncher Norm => norm.Value;
    public EmbeddingLauncher Embedding => embedding.Value;
    public CrossEntropyLauncher CrossEntropy => crossEntropy.Value;
    public OptimLauncher Optim => optim.Value;
    public GemmLauncher Gemm => gemm.Value;
    public AttentionLauncher Attention => attention.Value;
    public AttentionGemmLauncher AttentionGemm => attentionGemm.Value;
    public RopeLauncher Rope => rope.Value;
    public RoutingLauncher Routing => routing.Value;
    public CausalConvLauncher CausalConv => causalConv.Value;
    public SelectiveScanLauncher SelectiveScan => selectiveScan.Value;
    public SsdLauncher Ssd => ssd.Value;

    /// <summary>Every family, loading any not yet loaded (start-up compiles everything here, not mid-step).</summary>
    public IReadOnlyList<KernelFamily> All =>
        [Elementwise, Reduce, Norm, Embedding, CrossEntropy, Optim, Gemm, Attention, AttentionGemm, Rope, Routing, CausalConv, SelectiveScan, Ssd];

    public IEnumerable<MethodInfo> AllKernelMethods => All.SelectMany(f => f.KernelMethods).Distinct();

    public void Dispose()
    {
        if (gemm.IsValueCreated) gemm.Value.Dispose();
    }
}
