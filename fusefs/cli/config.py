"""Config files for the drive command, and `drive config show`.

Owns: reading ~/.config/drivefs/config.toml (yours) and DATA/config.toml (the
drive's), checking them against the command line parser, and laying their
values under what the command line says. Must not: know any option by name
(it walks the argparse tree, so options added to the parser are configurable
the day they exist), start anything, or hold secrets.

Keys are long option names (`cache-size` or `cache_size`). Top-level keys
apply to every command having that option; a table per command (`[up]`,
`[user.add]`) overrides them for that command. Precedence, highest first:
the command line; an environment variable an option reads (its help names it
as `[NAME]`); DATA/config.toml; yours; the parser's defaults.

How "given on the command line" is known: the same argv is parsed first by a
copy of the parser whose defaults are all SUPPRESS and nothing required, so
its namespace holds only what was typed. Values are then set on the real
parse's namespace, not as argparse defaults: a subcommand's defaults would
overwrite what its parent command was given (see `_daemon_options`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fusefs.credentials import CONFIG_DIR, TOKEN_ENV
from fusefs.errors import InvalidArgument

FILE_NAME = "config.toml"
USER_FILE = CONFIG_DIR / FILE_NAME
UNCONFIGURED = ("config",)  # commands that read no config: they show it
DEFAULT_COMMAND = ("up",)
_ENV_IN_HELP = re.compile(r"\[([A-Z][A-Z0-9_]*)\]")
_INFO_ACTIONS = (argparse._HelpAction, argparse._VersionAction)
# Words that mark a key as a secret, and where that secret belongs instead.
_SECRETS = {
    "password": "type it when asked, or pipe it in with --password-stdin",
    "passwd": "type it when asked, or pipe it in with --password-stdin",
    "token": f"put it in {TOKEN_ENV}, or sign in with drive login",
    "secret": "S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "or ~/.aws/credentials",
    "access-key": "S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "or ~/.aws/credentials",
}

MakeParser = Callable[[], argparse.ArgumentParser]


class ConfigError(InvalidArgument):
    """A config file the drive command cannot follow; the message names file and key."""


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    table: dict | None  # None: there is no such file


@dataclass(frozen=True)
class Setting:
    name: str  # the long option, as a key: cache-size
    dest: str
    value: object
    kind: str  # "flag", "env", "file" or "default"
    source: str  # "flag", "env NAME", the config file's path, "default"


# -- the parser tree --------------------------------------------------------------------


def _walk(parser: argparse.ArgumentParser, top: bool = True) -> Iterator[argparse.ArgumentParser]:
    """parser and every subcommand's parser below it, but for the UNCONFIGURED commands."""
    yield parser
    for name, child in _children(parser).items():
        if not (top and name in UNCONFIGURED):
            yield from _walk(child, top=False)


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Subcommand name -> its parser (aliases left out)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if all(child is not seen for seen in found.values()):
                    found[name] = child
    return found


def _subcommand_dest(parser: argparse.ArgumentParser) -> str | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.dest
    return None


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Key -> action, for the options a config file may set."""
    found = {}
    for action in parser._actions:
        if isinstance(action, _INFO_ACTIONS) or not action.option_strings:
            continue
        for option in action.option_strings:
            if option.startswith("--"):
                found[option[2:]] = action
    return found


def _chain(parser: argparse.ArgumentParser, path: Sequence[str]) -> list[argparse.ArgumentParser]:
    """The parsers a command line for `drive PATH…` goes through, outermost first."""
    chain = [parser]
    for name in path:
        chain.append(_children(chain[-1])[name])
    return chain


def _chain_options(chain: list[argparse.ArgumentParser]) -> dict[str, argparse.Action]:
    """Key -> action; the innermost parser's wins (it parses last) unless it only stands
    in for its parent's (default SUPPRESS: `trash list --data`)."""
    options: dict[str, argparse.Action] = {}
    for parser in chain:
        for key, action in _options(parser).items():
            if key not in options or action.default is not argparse.SUPPRESS:
                options[key] = action
    return options


# -- what the command line gave ---------------------------------------------------------


class _Asked(argparse.Action):
    """Stands in for --help and --version in the first parse: they run in the second."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, "==asked==", True)


class _FirstParseFailed(Exception):
    pass


def _fail(message: str) -> None:
    raise _FirstParseFailed(message)


def _given(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict | None:
    """What argv itself sets, by dest, plus the subcommands chosen; None when argv asks
    for help or the version, or is wrong (the real parse then says so, as always)."""
    for p in _walk_all(parser):
        p.error = _fail  # type: ignore[method-assign]
        p._defaults = {}
        for group in p._mutually_exclusive_groups:
            group.required = False
        for action in p._actions:
            action.default = argparse.SUPPRESS
            action.required = False
            if isinstance(action, _INFO_ACTIONS):
                action.__class__ = _Asked
    try:
        given = vars(parser.parse_args(argv))
    except _FirstParseFailed:
        return None
    return None if given.pop("==asked==", False) else given


def _walk_all(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for child in _children(parser).values():
        yield from _walk_all(child)


def _path_of(parser: argparse.ArgumentParser, given: dict) -> list[str]:
    """The subcommands chosen (["user", "add"]); their dests leave `given`."""
    path: list[str] = []
    while (dest := _subcommand_dest(parser)) is not None:
        name = given.pop(dest, None)
        if name is None:
            break
        path.append(name)
        parser = _children(parser)[name]
    return path


# -- reading the files ------------------------------------------------------------------


def _read(path: Path) -> ConfigFile:
    try:
        with open(path, "rb") as f:
            return ConfigFile(path, tomllib.load(f))
    except FileNotFoundError:
        return ConfigFile(path, None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:  # TOMLDecodeError (with line and column), bad UTF-8
        raise ConfigError(f"{path}: {exc}") from None


def _normalized(file: ConfigFile, table: dict, where: str) -> dict:
    """The table with `cache_size` spelled `cache-size`; both at once is a mistake."""
    keys: dict = {}
    for key, value in table.items():
        name = key.replace("_", "-")
        if name in keys:
            raise ConfigError(f"{file.path}: {where}{name}: given twice ({key!r} and another)")
        keys[name] = value
    return keys


def _check(root: argparse.ArgumentParser, file: ConfigFile) -> None:
    """Every key names a command or an option some command has, and no key is a secret."""
    if file.table is not None:
        _check_table([], [root], _normalized(file, file.table, ""), file)


def _check_table(
    path: list[str],
    chain: list[argparse.ArgumentParser],
    table: dict,
    file: ConfigFile,
) -> None:
    """Names checked everywhere; a value is checked here against every option it may set
    and refused if none takes it (top-level `cache = "x"` suits up but not scrub's list:
    `drive scrub` says so when it runs)."""
    here = chain[-1]
    commands = {n: c for n, c in _children(here).items() if path or n not in UNCONFIGURED}
    known: dict[str, list[argparse.Action]] = {}
    for parser in [*chain[:-1], *_walk(here)]:
        for key, action in _options(parser).items():
            known.setdefault(key, []).append(action)
    where = "".join(f"{name}." for name in path)
    command = " ".join(["drive", *path])
    for key, value in table.items():
        if isinstance(value, dict) and key in commands:
            sub = _normalized(file, value, f"{where}{key}.")
            _check_table([*path, key], [*chain, commands[key]], sub, file)
            continue
        actions = known.get(key, [])
        _refuse_secret(file, where + key, actions[0] if actions else None)
        if key in commands:
            raise ConfigError(
                f"{file.path}: {where}{key}: {command} {key} is a command: "
                f"its settings go in a [{where}{key}] table"
            )
        if not actions:
            hint = difflib.get_close_matches(key, [*known, *commands], n=1)
            also = f" (did you mean {hint[0]}?)" if hint else ""
            if isinstance(value, dict):
                what = f"no command {command} {key}"
            else:
                what = f"{command} has no option --{key}" if path else f"no option --{key}"
            raise ConfigError(f"{file.path}: {where}{key}: {what}{also}")
        _check_value(actions, value, file, where + key)


def _check_value(actions: list[argparse.Action], raw: object, file: ConfigFile, key: str) -> None:
    if isinstance(raw, dict):
        raise ConfigError(f"{file.path}: {key}: an option's value, not a table")
    first = None
    for action in actions:
        try:
            _value(action, raw, file, key)
            return
        except ConfigError as exc:
            first = first or exc
    raise first  # type: ignore[misc]


def _refuse_secret(file: ConfigFile, key: str, action: argparse.Action | None) -> None:
    if action is not None and action.nargs == 0:
        return  # a flag (--password-stdin) holds no secret
    for word, instead in _SECRETS.items():
        if word in key.rsplit(".", 1)[-1]:
            raise ConfigError(f"{file.path}: {key}: secrets stay out of config files; {instead}")


def _files_for(
    root: argparse.ArgumentParser, path: Sequence[str], given: dict, default_data: Path
) -> tuple[ConfigFile, ConfigFile]:
    """(yours, the drive's): DATA is --data as given, else `data` from yours, else the
    default."""
    user = _read(USER_FILE)
    _check(root, user)
    data = given.get("data")
    if data is None:
        chosen = _layered(user, path).get("data")
        as_path = argparse.Action(["--data"], "data", type=Path)
        data = default_data if chosen is None else _value(as_path, chosen[1], user, chosen[0])
    drive = _read(Path(data) / FILE_NAME)
    _check(root, drive)
    if drive.table is not None and "data" in _normalized(drive, drive.table, ""):
        raise ConfigError(
            f"{drive.path}: data: the drive's own file cannot move it: "
            f"set data in {USER_FILE} or give --data"
        )
    return user, drive


def _layered(file: ConfigFile, path: Sequence[str]) -> dict[str, tuple[str, object]]:
    """Key -> (key as written in the file, value) for the command `path`: top-level keys,
    then its tables', the innermost winning."""
    chosen: dict[str, tuple[str, object]] = {}
    table = file.table or {}
    where = ""
    for depth in range(len(path) + 1):
        for key, value in _normalized(file, table, where).items():
            if not isinstance(value, dict):
                chosen[key] = (where + key, value)
        if depth == len(path):
            break
        table = table.get(path[depth], {})
        table = table if isinstance(table, dict) else {}
        where += f"{path[depth]}."
    return chosen


# -- values -----------------------------------------------------------------------------


def _value(action: argparse.Action, raw: object, file: ConfigFile, key: str) -> object:
    """A TOML value as the option's own `type` makes it; ConfigError if it cannot be."""
    wrong = f"{file.path}: {key}: "
    if isinstance(action, argparse.BooleanOptionalAction):
        return _flag(raw, wrong)
    if isinstance(action, argparse._CountAction):
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise ConfigError(wrong + "expects a count (0, 1, 2…)")
        return raw
    if action.nargs == 0:  # store_true, store_false, store_const
        if isinstance(action, argparse._AppendConstAction):
            raise ConfigError(wrong + "cannot be set in a config file")
        if _flag(raw, wrong):
            return action.const
        if isinstance(action.const, bool):
            return not action.const
        return None if action.default is argparse.SUPPRESS else action.default
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    many = many or isinstance(action.nargs, int)
    if many:
        if not isinstance(raw, list):
            raise ConfigError(wrong + 'expects a list, e.g. ["a", "b"]')
        return [_scalar(action, item, file, wrong) for item in raw]
    return _scalar(action, raw, file, wrong)


def _flag(raw: object, wrong: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(wrong + "expects true or false")
    return raw


def _scalar(action: argparse.Action, raw: object, file: ConfigFile, wrong: str) -> object:
    takes_text = action.type in (None, str, Path)
    if isinstance(raw, list):
        raise ConfigError(wrong + "expects one value, not a list")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(
            wrong + "expects " + ("a string" if takes_text else "a number or a string")
        )
    if not isinstance(raw, str) and takes_text:
        raise ConfigError(wrong + "expects a string (in quotes)")
    text = str(raw)
    if action.type is Path:
        path = Path(text).expanduser()
        value: object = path if path.is_absolute() else file.path.parent / path
    else:
        try:
            value = action.type(text) if action.type is not None else text  # type: ignore[operator]
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            if action.type in (int, float):  # their own words are Python's
                kind = "a whole number" if action.type is int else "a number"
                raise ConfigError(wrong + f"expects {kind}, not {text!r}") from None
            raise ConfigError(wrong + (str(exc) or f"not a valid value: {text!r}")) from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(wrong + f"{value!r} is not one of {choices}")
    return value


def _env(action: argparse.Action) -> str | None:
    """The environment variable the option was read from, if it is set."""
    named = _ENV_IN_HELP.search(action.help or "")
    return named.group(1) if named and os.environ.get(named.group(1)) else None


def _default(action: argparse.Action) -> object:
    """The option's value when nothing sets it, as argparse would make it."""
    if isinstance(action.default, str) and action.type is not None:
        return action.type(action.default)  # type: ignore[operator]
    return action.default


# -- putting it together ----------------------------------------------------------------


def settings(
    root: argparse.ArgumentParser,
    path: Sequence[str],
    given: dict,
    files: Sequence[ConfigFile],
) -> list[Setting]:
    """Every option of `drive PATH…`: its value and where it comes from. files: lowest
    precedence first."""
    chain = _chain(root, path)
    options = _chain_options(chain)
    from_files: dict[str, Setting] = {}
    for file in files:
        for key, (written, raw) in _layered(file, path).items():
            action = options.get(key)
            if action is not None:
                value = _value(action, raw, file, written)
                from_files[key] = Setting(key, action.dest, value, "file", str(file.path))
    excluded = _excluded_by_given(chain, given)
    found = []
    for key, action in sorted(options.items()):
        if action.dest in given:
            found.append(Setting(key, action.dest, given[action.dest], "flag", "flag"))
        elif (env := _env(action)) is not None:
            found.append(Setting(key, action.dest, _default(action), "env", f"env {env}"))
        elif key in from_files and action.dest not in excluded:
            found.append(from_files[key])
        elif action.default is not argparse.SUPPRESS:
            found.append(Setting(key, action.dest, _default(action), "default", "default"))
    return found


def _excluded_by_given(chain: list[argparse.ArgumentParser], given: dict) -> set[str]:
    """Dests a config file must not set: another option of their mutually exclusive
    group (restore --revision | --at) was given."""
    excluded = set()
    for parser in chain:
        for group in parser._mutually_exclusive_groups:
            dests = {a.dest for a in group._group_actions}
            if dests & given.keys():
                excluded |= dests - given.keys()
    return excluded


def parse_args(
    make_parser: MakeParser, argv: Sequence[str] | None, default_data: Path
) -> argparse.Namespace:
    """argparse's namespace for argv, with what config files say where argv says nothing."""
    argv = sys.argv[1:] if argv is None else list(argv)
    given = _given(make_parser(), argv)
    parser = make_parser()
    if given is None:
        return parser.parse_args(argv)  # help, version, or a mistake argparse reports
    path = _path_of(parser, given)
    if path[:1] and path[0] in UNCONFIGURED:
        return parser.parse_args(argv)
    chain = _chain(parser, path)
    found = settings(parser, path, given, _files_for(parser, path, given, default_data))
    from_files = {s.dest: s for s in found if s.kind == "file"}
    for p in chain:  # what a file gives need not be typed: mount's --metad
        for action in p._actions:
            if action.dest in from_files:
                action.required = False
        for group in p._mutually_exclusive_groups:
            if any(action.dest in from_files for action in group._group_actions):
                group.required = False
    args = parser.parse_args(argv)
    for dest, setting in from_files.items():
        setattr(args, dest, setting.value)
    return args


# -- drive config show ------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser(
        "config", help="what a command takes from the config files, and from where"
    )
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser(
        "show", help="each setting of a command: its value and where it comes from"
    )
    show.add_argument(
        "target", metavar="COMMAND", nargs="*", help="e.g. mount, or user add (default: up)"
    )
    show.add_argument(
        "--data", type=Path, help="as the command would be given it (default: from your file)"
    )
    show.add_argument("--json", action="store_true", help="one JSON object, for scripts")


def show(make_parser: MakeParser, args: argparse.Namespace, default_data: Path) -> int:
    root = make_parser()
    path = list(args.target) or list(DEFAULT_COMMAND)
    try:
        _chain(root, path)
    except KeyError:
        raise ConfigError(f"no command drive {' '.join(path)}") from None
    if path[0] in UNCONFIGURED:
        raise ConfigError(f"drive {path[0]} reads no config file")
    given = {} if args.data is None else {"data": args.data}
    user, drive = _files_for(root, path, given, default_data)
    found = settings(root, path, given, [user, drive])
    files = [drive, user]  # highest precedence first, as the settings
    if args.json:
        print(
            json.dumps(
                {
                    "command": " ".join(path),
                    "files": [{"path": str(f.path), "read": f.table is not None} for f in files],
                    "settings": {
                        s.name: {"value": _jsonable(s.value), "source": s.source} for s in found
                    },
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(f"drive {' '.join(path)}: flags, then environment, then these files, then defaults")
    for f in files:
        print(f"  {f.path}: {'read' if f.table is not None else 'not there'}")
    rows = [(s.name, _text(s.value), s.source) for s in found]
    widths = [max((len(row[i]) for row in rows), default=0) for i in (0, 1)]
    for name, value, source in rows:
        print(f"{name:<{widths[0]}}  {value:<{widths[1]}}  {source}")
    return 0


def _jsonable(value: object) -> object:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(map(str, value)) if value else "-"
    return str(value)
