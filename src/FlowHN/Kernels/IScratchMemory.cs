using FlowHN.Runtime;

namespace FlowHN.Kernels;

/// <summary>
/// Where a launcher's temporary buffers come from and go back to. The owner of the launchers decides: with
/// several streams a block freed as soon as a launch sequence ends could be handed to another stream while this
/// one still reads it, so inside a training step scratch is kept until the step (or the layer it belongs to)
/// ends; with one stream it can go back at once, which stream order makes safe.
/// </summary>
internal interface IScratchMemory
{
    DeviceBlock Rent(long elements);

    /// <summary>Called when the launch sequence is done with <paramref name="block"/>.</summary>
    void Return(DeviceBlock block);
}
