using System.Reflection;
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

    private static IEnumerable<Type> Uses(Type type)
    {
        var direct = new List<Type?> { type.BaseType };
        direct.AddRange(type.GetInterfaces());
        direct.AddRange(type.GetFields(CodeReader.Everything).Select(f => f.FieldType));
        direct.AddRange(type.GetProperties(CodeReader.Everything).Select(p => p.PropertyType));
        foreach (var method in CodeReader.MethodsOf(type))
        {
            if (method is MethodInfo info) direct.Add(info.ReturnType);
            direct.AddRange(method.GetParameters().Select(p => p.ParameterType));
            var body = method.GetMethodBody();
            if (body is null) continue;
            direct.AddRange(body.LocalVariables.Select(v => v.LocalType));
            direct.AddRange(CodeReader.MembersIn(method).SelectMany(TypesOf));
        }
        return direct.Where(t => t is not null).SelectMany(t => Expand(t!));
    }

    /// <summary>The types a member named in code brings in: itself, or its declaring type and field or return type.</summary>
    private static IEnumerable<Type> TypesOf(MemberInfo member)
    {
        if (member is Type type) yield return type;
        else if (member.DeclaringType is { } declaring) yield return declaring;
        if (member is FieldInfo field) yield return field.FieldType;
        if (member is MethodInfo called) yield return called.ReturnType;
    }

    /// <summary>A type with its element type and generic arguments (a List of tensors uses Tensor).</summary>
    private static IEnumerable<Type> Expand(Type type)
    {
        if (type.HasElementType) return Expand(type.GetElementType()!);
        if (!type.IsGenericType) return [type];
        return type.GetGenericArguments().SelectMany(Expand).Prepend(type.GetGenericTypeDefinition());
    }
}
