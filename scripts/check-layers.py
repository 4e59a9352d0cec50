#!/usr/bin/env python3
"""Checks that src/ has no import cycle and that no module uses one listed after it
in lib.rs's layer list (the "Layers, leaf first" doc comment).

    python3 scripts/check-layers.py        (exit 1 and the offending edges if not)

An import is any `crate::` or `super::` path outside comments and `#[cfg(test)]` code,
resolved to the longest module file it names. Cycles are looked for between module
files (carve::flv and carve::fragments count as two), layers between top-level modules.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_texts():
    """The library's module files by path (the binary's own, named in main.rs, left out)."""
    binary = set(re.findall(r"^mod (\w+);", open(os.path.join(SRC, "main.rs")).read(), re.M))
    mods = {}
    for folder, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs") or name == "main.rs":
                continue
            rel = os.path.relpath(os.path.join(folder, name), SRC)[:-3].replace("/", "::")
            rel = rel.removesuffix("::mod")
            if rel == "lib" or rel.split("::")[0] in binary:
                continue
            text = open(os.path.join(folder, name)).read().split("#[cfg(test)]")[0]
            lines = (l for l in text.split("\n") if not l.strip().startswith("//"))
            mods[rel] = "\n".join(lines)
    return mods


def edges(mods):
    def resolve(path):
        parts = path.split("::")
        for k in range(len(parts), 0, -1):
            if "::".join(parts[:k]) in mods:
                return "::".join(parts[:k])
        return None

    def related(a, b):
        return a == b or a.startswith(b + "::") or b.startswith(a + "::")

    graph = {m: set() for m in mods}
    for m, text in mods.items():
        parent = "::".join(m.split("::")[:-1])
        is_dir = os.path.exists(os.path.join(SRC, m.replace("::", "/"), "mod.rs"))
        here = m if is_dir else parent
        paths = re.findall(r"crate::([\w:]+)", text)
        for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
            paths += re.findall(r"([\w:]+)", group)
        paths += [f"{here}::{p}" if here else p for p in re.findall(r"super::([\w:]+)", text)]
        for p in paths:
            target = resolve(p)
            if target and not related(m, target):
                graph[m].add(target)
    return graph


def cycles(graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def layer_order():
    lib = open(os.path.join(SRC, "lib.rs")).read()
    section = lib.split("Layers, leaf first")[1].split("\n\n")[0]
    order = []
    for name in re.findall(r"\[`(\w+)`\]:", section):
        if name not in order:
            order.append(name)
    return order


def main():
    mods = module_texts()
    graph = edges(mods)
    bad = [f"cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    order = layer_order()
    for a, targets in graph.items():
        for b in targets:
            ta, tb = a.split("::")[0], b.split("::")[0]
            if ta != tb and ta in order and tb in order and order.index(tb) > order.index(ta):
                bad.append(f"layer: {a} uses {b}, listed after it in lib.rs")
    unlisted = sorted({m.split("::")[0] for m in mods} - set(order))
    bad += [f"lib.rs's layer list does not name module {m}" for m in unlisted]
    for line in sorted(bad):
        print(line, file=sys.stderr)
    edge_count = sum(len(t) for t in graph.values())
    print(f"{len(mods)} modules, {edge_count} imports, {len(bad)} problems")
    sys.exit(1 if bad else 0)


main()
