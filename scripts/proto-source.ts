// Prints a proto2/proto3 FileDescriptorProto back to .proto source, so that buf can compile against
// descriptors that npm packages ship only in compiled form (protovalidate's validate.proto).
// Custom options on the printed elements are left out: they matter to the descriptor's owner at run time
// (which uses its own embedded copy), not to files that merely import it.
import { isFieldSet } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FieldDescriptorProtoSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";

const scalarNames: Partial<Record<Type, string>> = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

const maxFieldNumber = 536_870_912; // exclusive end of extension ranges written as "max"

function typeOf(field: FieldDescriptorProto): string {
  const scalar = scalarNames[field.type];
  if (scalar !== undefined) return scalar;
  return `.${field.typeName.replace(/^\./, "")}`;
}

function defaultOf(field: FieldDescriptorProto): string {
  if (field.defaultValue === "") return "";
  const value = field.type === Type.STRING ? JSON.stringify(field.defaultValue) : field.defaultValue;
  return ` [default = ${value}]`;
}

function fieldLine(field: FieldDescriptorProto, syntax: string, inOneof: boolean): string {
  let label = "";
  if (!inOneof) {
    if (field.label === Label.REPEATED) label = "repeated ";
    else if (field.label === Label.REQUIRED) label = "required ";
    else if (syntax === "proto2" || field.proto3Optional) label = "optional ";
  }
  return `${label}${typeOf(field)} ${field.name} = ${field.number}${defaultOf(field)};`;
}

function printEnum(e: EnumDescriptorProto, indent: string): string[] {
  return [`${indent}enum ${e.name} {`, ...e.value.map((v) => `${indent}  ${v.name} = ${v.number};`), `${indent}}`];
}

function printMessage(m: DescriptorProto, syntax: string, indent: string): string[] {
  const inner = `${indent}  `;
  const lines = [`${indent}message ${m.name} {`];
  for (const nested of m.nestedType) lines.push(...printMessage(nested, syntax, inner));
  for (const e of m.enumType) lines.push(...printEnum(e, inner));
  const printedOneofs = new Set<number>();
  for (const field of m.field) {
    // oneof_index is a proto2 optional field: its presence, not its value, says "in a oneof"
    const realOneof = isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) && !field.proto3Optional;
    if (!realOneof) {
      lines.push(inner + fieldLine(field, syntax, false));
      continue;
    }
    const index = field.oneofIndex;
    if (printedOneofs.has(index)) continue;
    printedOneofs.add(index);
    lines.push(`${inner}oneof ${m.oneofDecl[index]!.name} {`);
    for (const member of m.field.filter(
      (f) => isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) && f.oneofIndex === index,
    )) {
      lines.push(`${inner}  ${fieldLine(member, syntax, true)}`);
    }
    lines.push(`${inner}}`);
  }
  for (const range of m.extensionRange) {
    const end = range.end >= maxFieldNumber ? "max" : String(range.end - 1);
    lines.push(`${inner}extensions ${range.start} to ${end};`);
  }
  lines.push(`${indent}}`);
  return lines;
}

/** Returns .proto source declaring the same types, fields, numbers and extensions as the descriptor. */
export function protoSource(file: FileDescriptorProto): string {
  const syntax = file.syntax === "" ? "proto2" : file.syntax;
  const lines = [
    `// Printed from the compiled descriptor of ${file.name} by scripts/proto-source.ts; do not edit.`,
    `syntax = "${syntax}";`,
    "",
    `package ${file.package};`,
    "",
    ...file.dependency.map((d) => `import "${d}";`),
    "",
  ];
  for (const e of file.enumType) lines.push(...printEnum(e, ""));
  for (const m of file.messageType) lines.push(...printMessage(m, syntax, ""));
  const byExtendee = Map.groupBy(file.extension, (ext) => ext.extendee);
  for (const [extendee, fields] of byExtendee) {
    lines.push(`extend ${extendee} {`);
    for (const field of fields) lines.push(`  ${fieldLine(field, syntax, false)}`);
    lines.push("}");
  }
  return `${lines.join("\n")}\n`;
}
