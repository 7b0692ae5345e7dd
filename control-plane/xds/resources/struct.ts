// google.protobuf.Struct as decoded by proto-loader (keepCase, oneofs) <-> plain JSON.
type ProtoValue = {
  kind?: string;
  null_value?: unknown;
  number_value?: number;
  string_value?: string;
  bool_value?: boolean;
  struct_value?: ProtoStruct;
  list_value?: { values?: ProtoValue[] };
};
export type ProtoStruct = { fields?: Record<string, ProtoValue> };

export function structToJson(struct: ProtoStruct | undefined | null): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: ProtoValue): unknown {
  switch (v.kind) {
    case 'number_value':
      return v.number_value;
    case 'string_value':
      return v.string_value;
    case 'bool_value':
      return v.bool_value;
    case 'struct_value':
      return structToJson(v.struct_value);
    case 'list_value':
      return (v.list_value?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}
