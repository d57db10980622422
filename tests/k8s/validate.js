#!/usr/bin/env node
// Validates rendered Kubernetes manifests offline, for tests/k8s/test_manifests.py.
//
//   kubectl kustomize k8s/overlays/prod | node tests/k8s/validate.js
//
// Reads a multi-document YAML stream on stdin and checks every object twice:
//   1. against the Kubernetes OpenAPI schema of its apiVersion and kind, with
//      kubernetes-models' validate() (types, required fields, enums, formats);
//   2. for fields the schema does not know: the OpenAPI schemas allow any extra
//      property, so a misspelt field ("readinesProbe") would pass step 1 and be dropped
//      by the API server without a word. The field lists come from kubernetes-models'
//      own type declarations (.d.ts), which are generated from the same schemas.
// Prints {"objects": [...], "errors": [...]} as JSON on stdout (the objects as parsed, for
// the policy checks in Python) and exits 1 when there is any error, 2 when the npm
// packages are missing (installed by scripts/setup.sh into tests/interop/npm).
"use strict";

const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");

const npmDir = process.env.SYNAPSE_NPM_DIR || path.join(__dirname, "..", "interop", "npm");
const modules = path.join(npmDir, "node_modules");
const modelsDir = path.join(modules, "kubernetes-models");
const machineryDir = path.join(modules, "@kubernetes-models", "apimachinery");

function die(code, message) {
  process.stderr.write(`validate.js: ${message}\n`);
  process.exit(code);
}

// ---- field lists from the .d.ts declarations ------------------------------------------

// A property's type: a named interface, an array or a string-keyed map of something, or
// a leaf (string, number, boolean, a union of literals) that has no fields to check.
function parseType(text) {
  text = text.trim().replace(/;$/, "");
  let m = /^Array<(.*)>$/.exec(text);
  if (m) return { array: parseType(m[1]) };
  m = /^\{\s*\[key: string\]: (.*?);?\s*\}$/s.exec(text);
  if (m) return { map: parseType(m[1]) };
  if (/^I[A-Za-z0-9]+$/.test(text)) return { ref: text };
  return {};
}

// interfaces: name -> {field: type}; both the file's own name (IProbe) and the global
// alias it exports (IIoK8sApiCoreV1Probe), which is what other files refer to.
function parseDeclarations(file, interfaces) {
  const text = fs.readFileSync(file, "utf8");
  const local = {};
  const re = /^export interface (\w+)(?: extends [^{]+)? \{\n([\s\S]*?)^\}$/gm;
  let m;
  while ((m = re.exec(text))) {
    const fields = {};
    const body = m[2].replace(/^\s*\/\*\*[\s\S]*?\*\/\n/gm, "");
    const prop = /^ {4}"([^"]+)"\??: ([^\n]*(?:\n(?! {4}")[^\n]*)*)/gm;
    let p;
    while ((p = prop.exec(body))) fields[p[1]] = parseType(p[2].replace(/\n\s*/g, " "));
    local[m[1]] = fields;
  }
  for (const [name, fields] of Object.entries(local)) interfaces[`${file}#${name}`] = fields;
  const alias = /^export type \{ ([^}]*) \};$/gm;
  while ((m = alias.exec(text))) {
    for (const pair of m[1].split(",")) {
      const [from, to] = pair.trim().split(/\s+as\s+/);
      if (to && local[from]) interfaces[to] = local[from];
    }
  }
}

function walkDeclarations(dir, interfaces) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "_schemas" && entry.name !== "node_modules") walkDeclarations(full, interfaces);
    } else if (entry.name.endsWith(".d.ts")) {
      parseDeclarations(full, interfaces);
    }
  }
}

function unknownFields(value, type, where, interfaces, errors) {
  if (value === null || typeof value !== "object") return;
  if (type.array) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, type.array, `${where}/${i}`, interfaces, errors));
  } else if (type.map) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, type.map, `${where}/${k}`, interfaces, errors);
  } else if (type.ref) {
    const fields = interfaces[type.ref];
    // Unknown or free-form (an interface with no fields: RawExtension, FieldsV1).
    if (!fields || Object.keys(fields).length === 0 || Array.isArray(value)) return;
    for (const [k, v] of Object.entries(value)) {
      if (!(k in fields)) errors.push(`${where}/${k}: unknown field`);
      else unknownFields(v, fields[k], `${where}/${k}`, interfaces, errors);
    }
  }
}

// ---- the objects -----------------------------------------------------------------------

// apiVersion "v1" -> kubernetes-models/v1/Kind; "apps/v1" -> kubernetes-models/apps/v1/Kind.
function modelFile(apiVersion, kind, ext) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) return null;
  const parts = apiVersion.split("/");
  if (parts.length > 2 || parts.some((p) => !/^[a-z0-9.]+$/.test(p))) return null;
  return path.join(modelsDir, ...parts, `${kind}${ext}`);
}

async function main() {
  if (!fs.existsSync(path.join(modelsDir, "package.json")) || !fs.existsSync(path.join(modules, "yaml", "package.json")))
    die(2, `kubernetes-models or yaml is not installed in ${modules}: run scripts/setup.sh (or npm install there)`);
  const YAML = await import(pathToFileURL(path.join(modules, "yaml", "dist", "index.js")).href);

  const interfaces = {};
  walkDeclarations(modelsDir, interfaces);
  walkDeclarations(machineryDir, interfaces);

  const input = fs.readFileSync(0, "utf8");
  const objects = [];
  const errors = [];
  YAML.parseAllDocuments(input).forEach((doc, i) => {
    if (doc.errors.length) {
      errors.push(`document ${i}: ${doc.errors.map((e) => e.message).join("; ")}`);
      return;
    }
    const obj = doc.toJS();
    if (obj !== null && obj !== undefined) objects.push(obj);
  });

  for (const obj of objects) {
    const name = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const js = modelFile(obj.apiVersion, obj.kind, ".js");
    if (!js || !fs.existsSync(js)) {
      errors.push(`${name}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      continue;
    }
    const mod = await import(pathToFileURL(js).href);
    const Model = mod[obj.kind];
    try {
      new Model(obj).validate();
    } catch (e) {
      const details = Array.isArray(e.errors) ? e.errors.map((x) => `${x.instancePath} ${x.message}`) : [e.message];
      for (const d of details) errors.push(`${name}: ${d}`);
    }
    const fields = interfaces[`${modelFile(obj.apiVersion, obj.kind, ".d.ts")}#I${obj.kind}`];
    if (!fields) errors.push(`${name}: no field list for ${obj.apiVersion} ${obj.kind}`);
    else unknownFields(obj, { ref: `${obj.apiVersion}/${obj.kind}` }, name, { [`${obj.apiVersion}/${obj.kind}`]: fields, ...interfaces }, errors);
  }

  process.stdout.write(JSON.stringify({ objects, errors }) + "\n");
  process.exit(errors.length ? 1 : 0);
}

main().catch((e) => die(2, e && e.stack ? e.stack : String(e)));
