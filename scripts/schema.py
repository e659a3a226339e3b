#!/usr/bin/env python3
"""Writes schema.json, the JSON Schema of the rumor spec format.

The argument tables below are the single place the schema is described;
run `python3 scripts/schema.py > schema.json` after changing them.

A generator may take its arguments in more than one form: every released
form of the original tool (1.0 to 2.0.2) still runs. FORMS lists, per
generator, the alternatives of which at least one must be given.
"""
import json

S, B, I, M, L = {"type": "string"}, {"type": "boolean"}, {"type": "integer", "minimum": 1}, {"type": "object"}, {"type": "array", "items": {"type": "string"}}
ANY = {}
STRS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

IMPORTERS = {
    "copy": ({"from": S, "to": S}, {"allow_fail": B}),
    "vault": ({"path": S}, {"allow_fail": B}),
    "vault-file": ({"path": S, "file": S}, {"allow_fail": B}),
}
EXPORTERS = {
    "copy": ({"from": S, "to": S}, {}),
    "vault": ({"path": S}, {"files": L}),
    "vault-file": ({"path": S, "file": S}, {}),
}
GENERATORS = {
    "copy": ({"from": S, "to": S}, {}),
    "text": ({"name": S, "text": S}, {}),
    "json": ({"name": S, "value": ANY}, {}),
    "yaml": ({"name": S, "value": ANY}, {}),
    "toml": ({"name": S, "value": M}, {}),
    "id": ({"name": S}, {"length": I}),
    "key": ({"name": S}, {"length": I}),
    "pin": ({"name": S}, {"length": I}),
    "mkpasswd": ({"private": S, "public": S}, {"length": I}),
    "age": ({"private": S, "public": S}, {}),
    "ssh-keygen": ({"name": S, "private": S, "public": S}, {}),
    "env": ({"name": S, "variables": M}, {}),
    "moustache": ({"name": S, "template": S, "variables": M}, {}),
    "template": ({"name": S}, {"template": S, "file": S, "variables": M}),
    "pbkdf2": ({"key": S, "name": S}, {"iterations": I}),
    "wpa-psk": ({"ssid": S, "passphrase": S, "name": S}, {}),
    "wps-pin": ({"name": S}, {}),
    "sops": ({"age": S, "private": S, "public": S, "secrets": M}, {"recipients": L}),
    "openssl-ca": ({"public": S, "private": S}, {"config": S, "name": S, "days": I}),
    "openssl": ({"ca_public": S, "ca_private": S, "serial": S, "public": S, "private": S}, {"config": S, "name": S, "days": I}),
    "openssl-dhparam": ({"name": S}, {}),
    "nebula-ca": ({"name": S, "public": S, "private": S}, {"days": I, "ips": L, "subnets": L, "groups": L}),
    "nebula": ({"ca_public": S, "ca_private": S, "name": S, "ip": S, "public": S, "private": S}, {"groups": L, "subnets": L}),
    "cockroach-ca": ({"public": S, "private": S}, {"name": S, "days": I}),
    "cockroach": ({"ca_public": S, "ca_private": S, "hosts": STRS, "public": S, "private": S}, {"days": I}),
    # "user" came in 1.3.0; without it the certificate is for "client", as 1.2 made it.
    "cockroach-client": ({"ca_public": S, "ca_private": S, "public": S, "private": S}, {"user": S, "days": I}),
    "x509-ca": ({"public": S, "private": S, "subject": M}, {"sans": L, "key_usages": L, "extended_key_usages": L, "days": I, "key_type": {"enum": ["p256", "ed25519", "rsa"]}, "rsa_bits": I}),
    "x509": ({"ca_public": S, "ca_private": S, "public": S, "private": S, "subject": M}, {"serial": S, "sans": L, "key_usages": L, "extended_key_usages": L, "days": I, "key_type": {"enum": ["p256", "ed25519", "rsa"]}, "rsa_bits": I}),
}

# 2.0.0 replaced "name" (the subject CN, an Ed25519 key) with "config".
CONFIG_OR_NAME = [
    ("config", "2.x form: an OpenSSL config file in the workspace"),
    ("name", "1.x form: the subject's CN; an Ed25519 key, as 1.x made"),
]
FORMS = {"openssl-ca": CONFIG_OR_NAME, "openssl": CONFIG_OR_NAME}


def section(kind_key, table, generator):
    branches = []
    for kind, (required, optional) in table.items():
        props = dict(required)
        props.update(optional)
        if generator:
            props["renew"] = B
        arguments = {
            "type": "object",
            "title": f"{kind} arguments",
            "required": sorted(required),
            "properties": props,
        }
        if generator and kind in FORMS:
            arguments["anyOf"] = [{"title": title, "required": [arg]} for arg, title in FORMS[kind]]
        branches.append({
            "if": {"properties": {kind_key: {"const": kind}}},
            "then": {
                "properties": {"arguments": arguments},
                **({"required": ["arguments"]} if required else {}),
            },
        })
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": [kind_key],
            "properties": {
                kind_key: {"type": "string", "enum": list(table)},
                "arguments": {"type": "object"},
                "renew": {"type": "boolean", "description": "ignored, as in the original; use arguments.renew"},
            },
            "additionalProperties": False,
            "allOf": branches,
        },
    }


schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "rumor spec",
    "description": "imports run first, then generations, then exports",
    "type": "object",
    "properties": {
        "$schema": {"type": "string"},
        "imports": section("importer", IMPORTERS, False),
        "generations": section("generator", GENERATORS, True),
        "exports": section("exporter", EXPORTERS, False),
    },
    "additionalProperties": False,
}
print(json.dumps(schema, indent=2))
