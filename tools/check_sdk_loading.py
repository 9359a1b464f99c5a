"""Check that each cloud SDK is loaded only inside its own adapter package.

`make contracts` runs this beside lint-imports. lint-imports sees import statements, and a contract there
forbids a cloud SDK in any of them: the adapters load boto3, botocore, azure and kubernetes through
``endpointkit._lazy.require`` so that ``import endpointkit`` works on a bare install. A module name handed to
a loader is invisible to lint-imports; this walks the AST of every module of the package and follows each
name that reaches one:

- the loader under any name: ``from endpointkit._lazy import require as load``, ``from endpointkit import
  _lazy`` then ``_lazy.require``, relative imports, ``importlib.import_module``, ``from importlib import
  import_module``, ``__import__``;
- the module name given positionally or by keyword, as a string literal, an f-string or a ``+`` of resolvable
  parts, a name assigned in the same module (at any scope, every assignment counts) or a constant imported
  from another module of the package.

Rules, each finding printed as ``path:line: message``:

- a cloud SDK given to a loader outside its own adapter package (boto3 and botocore in
  ``endpointkit.adapters.sagemaker``, azure and kubernetes in ``endpointkit.adapters.aks``);
- a cloud SDK loaded with importlib instead of the lazy loader, or required with another target's pip extra;
- a module name the lazy loader gets that cannot be resolved to strings (a parameter, a computed value);
- the lazy loader used other than by a direct call (bound to another name, passed to ``functools.partial``),
  which would hide the name it gets.

A name importlib gets that cannot be resolved is allowed: the adapter registry (``endpointkit.adapters``)
imports its entries by a dotted path from its own table, and those are modules of this package.

Usage: ``python tools/check_sdk_loading.py [PACKAGE_DIR]`` (default: the repository's ``endpointkit``).
Exit status 1 when there is any finding.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMPORTLIB_LOADERS", "LAZY_LOADER", "SDK_OWNERS", "Finding", "SdkOwner", "check_package", "main"]


@dataclass(frozen=True)
class SdkOwner:
    """The adapter package allowed to load a cloud SDK, and the pip extra that installs it."""

    package: str
    extra: str


# The extras are those of pyproject.toml: `sagemaker` installs boto3 (and botocore), `aks` the azure-* and
# kubernetes distributions.
SDK_OWNERS: dict[str, SdkOwner] = {
    "boto3": SdkOwner("endpointkit.adapters.sagemaker", "sagemaker"),
    "botocore": SdkOwner("endpointkit.adapters.sagemaker", "sagemaker"),
    "azure": SdkOwner("endpointkit.adapters.aks", "aks"),
    "kubernetes": SdkOwner("endpointkit.adapters.aks", "aks"),
}
LAZY_LOADER = "endpointkit._lazy.require"
IMPORTLIB_LOADERS = frozenset({"importlib.import_module", "importlib.__import__", "builtins.__import__"})
_DEFAULT_PACKAGE_DIR = Path(__file__).resolve().parent.parent / "endpointkit"
# Beyond this many candidate strings (f-strings and `+` over names with several values), a name is treated
# as unresolvable rather than enumerated.
_MAX_CANDIDATES = 64


@dataclass(frozen=True, order=True)
class Finding:
    """One broken rule: where (path relative to the package's parent folder, line) and what."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class _Module:
    """One parsed module: its dotted name, imported names and every value bound to each local name."""

    name: str
    path: str
    tree: ast.Module
    aliases: dict[str, str]
    # None stands for a binding whose value is unknown (a parameter, a loop over a call, an augmented
    # assignment, ...): a name with one such binding is unresolvable.
    bindings: dict[str, list[ast.expr | None]]


def check_package(package_dir: Path) -> list[Finding]:
    """Every finding in the package at ``package_dir`` (a folder with ``__init__.py``), sorted by place."""
    modules, findings = _load_package(package_dir)
    for module in modules.values():
        findings.extend(_check_module(module, modules))
    return sorted(set(findings))


def _load_package(package_dir: Path) -> tuple[dict[str, _Module], list[Finding]]:
    modules: dict[str, _Module] = {}
    findings: list[Finding] = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            findings.append(Finding(relative.as_posix(), exc.lineno or 0, f"cannot be parsed: {exc.msg}"))
            continue
        aliases = _imported_names(tree, name, is_package)
        modules[name] = _Module(name, relative.as_posix(), tree, aliases, _bindings(tree))
    return modules, findings


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import statement of the module."""
    aliases = {"__import__": "builtins.__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None:
                    aliases[alias.asname] = alias.name
                else:
                    top_level = alias.name.partition(".")[0]
                    aliases[top_level] = top_level
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_import_base(node, module, is_package)
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return aliases


def _absolute_import_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    base_parts = package_parts[: len(package_parts) - (node.level - 1)]
    return ".".join([*base_parts, *([node.module] if node.module else [])])


def _bindings(tree: ast.Module) -> dict[str, list[ast.expr | None]]:
    """Every value bound to each name anywhere in the module; scopes are merged, which errs on the strict side."""
    bindings: dict[str, list[ast.expr | None]] = {}
    understood: set[int] = set()

    def bind(target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            bindings.setdefault(target.id, []).append(value)
            understood.add(id(target))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                bind(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            bind(node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and isinstance(
            node.iter, (ast.Tuple, ast.List, ast.Set)
        ):
            for element in node.iter.elts:
                bind(node.target, element)
        elif isinstance(node, ast.arg):
            bindings.setdefault(node.arg, []).append(None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and id(node) not in understood:
            bindings.setdefault(node.id, []).append(None)
    return bindings


def _qualified_name(node: ast.expr, module: _Module) -> str | None:
    """The dotted name a ``Name`` or ``Attribute`` chain stands for, through the module's imports."""
    if isinstance(node, ast.Name):
        return module.aliases.get(node.id, f"{module.name}.{node.id}")
    if isinstance(node, ast.Attribute):
        base = _qualified_name(node.value, module)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _string_values(
    node: ast.expr, module: _Module, modules: dict[str, _Module], seen: frozenset[str]
) -> set[str] | None:
    """Every string ``node`` can evaluate to, or None when that cannot be told from the source."""
    if isinstance(node, ast.Constant):
        return {node.value} if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = [
            _string_values(
                part.value if isinstance(part, ast.FormattedValue) else part, module, modules, seen
            )
            for part in node.values
        ]
        return _concatenations(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _string_values(node.left, module, modules, seen)
        right = _string_values(node.right, module, modules, seen)
        return _concatenations([left, right])
    if isinstance(node, (ast.Name, ast.Attribute)):
        qualified = _qualified_name(node, module)
        return None if qualified is None else _constant_values(qualified, modules, seen)
    return None


def _constant_values(qualified: str, modules: dict[str, _Module], seen: frozenset[str]) -> set[str] | None:
    """The strings bound to ``module.name`` in a module of the package, following re-exports."""
    owner_name, _, attribute = qualified.rpartition(".")
    owner = modules.get(owner_name)
    if owner is None or qualified in seen:
        return None
    seen = seen | {qualified}
    if attribute in owner.bindings:
        values: set[str] = set()
        for bound in owner.bindings[attribute]:
            resolved = None if bound is None else _string_values(bound, owner, modules, seen)
            if resolved is None:
                return None
            values |= resolved
        return values
    if attribute in owner.aliases:
        return _constant_values(owner.aliases[attribute], modules, seen)
    return None


def _concatenations(parts: Sequence[set[str] | None]) -> set[str] | None:
    if any(part is None for part in parts):
        return None
    choices = [sorted(part) for part in parts if part is not None]
    count = 1
    for choice in choices:
        count *= len(choice)
    if count > _MAX_CANDIDATES:
        return None
    return {"".join(combination) for combination in itertools.product(*choices)}


def _check_module(module: _Module, modules: dict[str, _Module]) -> Iterator[Finding]:
    called: set[int] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call):
            loader = _qualified_name(node.func, module)
            if loader == LAZY_LOADER or loader in IMPORTLIB_LOADERS:
                called.add(id(node.func))
                yield from _check_loader_call(node, loader, module, modules)
    for node in ast.walk(module.tree):
        if (
            isinstance(node, (ast.Name, ast.Attribute))
            and isinstance(node.ctx, ast.Load)
            and id(node) not in called
            and _qualified_name(node, module) == LAZY_LOADER
        ):
            yield Finding(
                module.path,
                node.lineno,
                "the lazy loader is used other than by a direct call, which hides the module name it gets: "
                "call require() with the name written out",
            )


def _check_loader_call(
    call: ast.Call, loader: str, module: _Module, modules: dict[str, _Module]
) -> Iterator[Finding]:
    is_lazy = loader == LAZY_LOADER
    shown = "require()" if is_lazy else f"{loader.rpartition('.')[2]}()"
    names = _module_names(call, is_lazy, module, modules)
    if names is None:
        if is_lazy:
            yield Finding(
                module.path,
                call.lineno,
                "require() gets a module name that cannot be resolved from the source (not a string literal "
                "or a constant), so it may load a cloud SDK anywhere: pass the name written out",
            )
        return
    extras = _argument_values(call, None, "extra", module, modules) if is_lazy else None
    for name in sorted(names):
        sdk = name.partition(".")[0]
        owner = SDK_OWNERS.get(sdk)
        if owner is None:
            continue
        if module.name != owner.package and not module.name.startswith(owner.package + "."):
            message = f"{shown} loads {name!r} outside {owner.package}: {sdk} may be loaded only there"
        elif not is_lazy:
            message = (
                f"{shown} loads {name!r}: load a cloud SDK with endpointkit._lazy.require(..., "
                f"extra={owner.extra!r}), which names the pip extra when it is missing"
            )
        elif extras is not None and extras != {owner.extra}:
            message = f"require() loads {name!r} with extra={sorted(extras)}: {sdk} comes with extra {owner.extra!r}"
        else:
            continue
        yield Finding(module.path, call.lineno, message)


def _module_names(
    call: ast.Call, is_lazy: bool, module: _Module, modules: dict[str, _Module]
) -> set[str] | None:
    """The module names a loader call may import; relative importlib names are joined to ``package``."""
    names = _argument_values(call, 0, "module" if is_lazy else "name", module, modules)
    if names is None or is_lazy or not any(name.startswith(".") for name in names):
        return names
    packages = _argument_values(call, 1, "package", module, modules)
    if packages is None:
        return None
    return {package + name if name.startswith(".") else name for name in names for package in packages}


def _argument_values(
    call: ast.Call, position: int | None, keyword: str, module: _Module, modules: dict[str, _Module]
) -> set[str] | None:
    """The strings an argument (by position, or keyword only when ``position`` is None) may be.

    None when the value is unknown or the argument is absent.
    """
    if position is not None:
        if any(isinstance(argument, ast.Starred) for argument in call.args[: position + 1]):
            return None
        if position < len(call.args):
            return _string_values(call.args[position], module, modules, frozenset())
    for argument in call.keywords:
        if argument.arg == keyword:
            return _string_values(argument.value, module, modules, frozenset())
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Check a package folder, print each finding as ``path:line: message``; 1 when there is any."""
    parser = argparse.ArgumentParser(
        description="Each cloud SDK is loaded only inside its own adapter package."
    )
    parser.add_argument("package_dir", nargs="?", type=Path, default=_DEFAULT_PACKAGE_DIR)
    arguments = parser.parse_args(argv)
    package_dir: Path = arguments.package_dir
    if not (package_dir / "__init__.py").is_file():
        parser.error(f"{package_dir} is not a package folder (no __init__.py)")
    findings = check_package(package_dir)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} finding(s): each cloud SDK is loaded only inside its own adapter package.")
        return 1
    print("SDK loading: each cloud SDK is loaded only inside its own adapter package.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
