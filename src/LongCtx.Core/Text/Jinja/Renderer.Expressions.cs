namespace LongCtx.Text.Jinja;

internal sealed partial class Renderer
{
    private object? Eval(Expr e, Scope scope)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return scope.TryGet(n.Name, out var v) ? v : Undefined.Name(n.Name);
            case ListExpr l: return l.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr t: return t.Items.Select(x => Eval(x, scope)).ToArray();
            case DictExpr d:
                var dict = new PyDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope);
                    if (key is null or List<object?> or PyDict or Undefined) throw new JinjaError($"unhashable dict key: {PyOps.TypeName(key)}");
                    dict[key] = Eval(val, scope);
                }
                return dict;
            case AttrExpr a: return PyOps.GetAttribute(Eval(a.Target, scope), a.Name);
            case ItemExpr i:
                var owner = Eval(i.Target, scope);
                return PyOps.GetItem(owner, i.Key is SliceExpr s ? Slice(s, scope) : Eval(i.Key, scope));
            case CallExpr call:
                var callee = Eval(call.Target, scope);
                var args = EvalArgs(call.Args, scope);
                return callee switch
                {
                    Undefined u => throw u.Fail(),
                    ICallable f => f.Call(args),
                    _ => throw new JinjaError($"'{PyOps.TypeName(callee)}' object is not callable"),
                };
            case FilterExpr f: return Filters.Apply(f.Name, Eval(f.Value!, scope), EvalArgs(f.Args, scope));
            case TestExpr t: return Predicates.Apply(t.Name, Eval(t.Value, scope), EvalArgs(t.Args, scope));
            case UnaryExpr u:
                var operand = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !PyOps.Truthy(operand),
                    "-" => PyOps.Negate(operand),
                    _ => operand is Undefined un ? throw un.Fail() : PyOps.IsNumber(operand) ? operand
                        : throw new JinjaError($"bad operand type for unary +: '{PyOps.TypeName(operand)}'"),
                };
            case BinaryExpr b: return PyOps.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
            case ConcatExpr cat: return string.Concat(cat.Items.Select(x => Filters.SoftStr(Eval(x, scope))));
            case LogicExpr logic:
                var left = Eval(logic.Left, scope);
                return PyOps.Truthy(left) == logic.And ? Eval(logic.Right, scope) : left;
            case CompareExpr cmp:
                var a1 = Eval(cmp.First, scope);
                foreach (var (op, rightExpr) in cmp.Ops)
                {
                    var a2 = Eval(rightExpr, scope);
                    if (!PyOps.Compare(op, a1, a2)) return false;
                    a1 = a2;
                }
                return true;
            case CondExpr ce:
                if (PyOps.Truthy(Eval(ce.Test, scope))) return Eval(ce.Then, scope);
                return ce.Else is null ? new Undefined($"the inline if-expression on line {ce.Line} evaluated to false and no else section was defined.") : Eval(ce.Else, scope);
        }
        throw new JinjaError($"unknown expression {e.GetType().Name}");
    }

    private PySlice Slice(SliceExpr s, Scope scope)
    {
        long? Bound(Expr? x)
        {
            if (x is null) return null;
            var v = Eval(x, scope);
            return v is null ? null : PyOps.IsInteger(v) ? PyOps.ToLong(v) : throw new JinjaError("slice indices must be integers or None");
        }
        return new PySlice(Bound(s.Start), Bound(s.Stop), Bound(s.Step));
    }

    private CallArgs EvalArgs(Arguments args, Scope scope)
    {
        if (args.Positional.Count == 0 && args.Named.Count == 0) return CallArgs.Empty;
        return new CallArgs(args.Positional.Select(x => Eval(x, scope)).ToList(),
            args.Named.Select(kv => new KeyValuePair<string, object?>(kv.Name, Eval(kv.Value, scope))).ToList());
    }
}
