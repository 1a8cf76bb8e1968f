using System.Reflection;
using System.Reflection.Emit;
using FlowHN.Runtime;

namespace FlowHN.Tests;

/// <summary>
/// The library's layers, lowest first: a type may use types of its own layer and the layers below it only. Read
/// from the compiled assembly (base types, interfaces, fields, properties, method signatures, locals and every type,
/// method or field a method body names; compiler-made closures included), so a qualified name or a `var` cannot
/// hide a reference from it.
/// </summary>
public class LayeringTests
{
    private static readonly string[] Layers = ["FlowHN.Runtime", "FlowHN.Kernels", "FlowHN.Tensors", "FlowHN.Autograd"];

    [Fact]
    public void NoLayerOfTheCoreUsesAHigherOne()
    {
        var assembly = typeof(ComputeDevice).Assembly;
        var violations = new List<string>();
        foreach (var type in assembly.GetTypes())
        {
            int layer = LayerOf(type);
            if (layer < 0 || layer == Layers.Length - 1) continue;
            foreach (var used in Uses(type).Distinct())
            {
                int usedLayer = LayerOf(used);
                bool inTheLibrary = used.Assembly == assembly && used.Namespace?.StartsWith("FlowHN.") == true;
                if (inTheLibrary && (usedLayer > layer || usedLayer < 0))
                    violations.Add($"{type.FullName} uses {used.FullName}");
            }
        }
        Assert.Empty(violations);
    }

    [Fact]
    public void TheReaderSeesSignaturesAndLocals()
    {
        var uses = Uses(typeof(FlowHN.Tensors.Tensor)).ToList();
        Assert.Contains(typeof(FlowHN.Tensors.TensorDevice), uses); // a property
        Assert.Contains(typeof(DeviceBlock), uses);                  // a constructor parameter
        Assert.Contains(typeof(CachingAllocator), Uses(typeof(FlowHN.Tensors.TensorScope)));
        Assert.Contains(typeof(FlowHN.Autograd.Tape), Uses(typeof(FlowHN.Autograd.Session)));
    }

    private static int LayerOf(Type type)
    {
        string ns = type.Namespace ?? "";
        return Array.FindIndex(Layers, layer => ns == layer || ns.StartsWith(layer + "."));
    }

    private const BindingFlags Everything =
        BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    private static IEnumerable<Type> Uses(Type type)
    {
        var direct = new List<Type?> { type.BaseType };
        direct.AddRange(type.GetInterfaces());
        direct.AddRange(type.GetFields(Everything).Select(f => f.FieldType));
        direct.AddRange(type.GetProperties(Everything).Select(p => p.PropertyType));
        foreach (var method in type.GetMethods(Everything).Cast<MethodBase>().Concat(type.GetConstructors(Everything)))
        {
            if (method is MethodInfo info) direct.Add(info.ReturnType);
            direct.AddRange(method.GetParameters().Select(p => p.ParameterType));
            var body = method.GetMethodBody();
            if (body is null) continue;
            direct.AddRange(body.LocalVariables.Select(v => v.LocalType));
            direct.AddRange(TypesInCode(method, body.GetILAsByteArray()!));
        }
        return direct.Where(t => t is not null).SelectMany(t => Expand(t!));
    }

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The types a method body names: what it calls, reads, creates, casts to or loads a token of.</summary>
    private static IEnumerable<Type> TypesInCode(MethodBase method, byte[] il)
    {
        var typeArgs = method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int at = 0; at < il.Length;)
        {
            short value = il[at] == 0xFE ? (short)(0xFE00 | il[at + 1]) : il[at];
            var code = OpCodesByValue[value];
            at += code.Size;
            int size = code.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
            if (code.OperandType is OperandType.InlineType or OperandType.InlineTok or OperandType.InlineMethod or OperandType.InlineField)
            {
                var member = method.Module.ResolveMember(BitConverter.ToInt32(il, at), typeArgs, methodArgs);
                if (member is Type type) yield return type;
                else if (member?.DeclaringType is { } declaring) yield return declaring;
                if (member is FieldInfo field) yield return field.FieldType;
                if (member is MethodInfo called) yield return called.ReturnType;
            }
            at += size;
        }
    }

    /// <summary>A type with its element type and generic arguments (a List of tensors uses Tensor).</summary>
    private static IEnumerable<Type> Expand(Type type)
    {
        if (type.HasElementType) return Expand(type.GetElementType()!);
        if (!type.IsGenericType) return [type];
        return type.GetGenericArguments().SelectMany(Expand).Prepend(type.GetGenericTypeDefinition());
    }
}
