"""Reads a ``trun`` command line against the parameters of every registered step.

::

    trun --module my_steps Aggregate --window 3 --Load-date 2024-02-13 --workers 4

* ``--module M`` is imported first, so that the steps it defines register;
* the first positional argument is the family of the step to run (the *root* step);
* ``--param-name`` flags set parameters of the root step (they become
  constructor arguments);
* ``--Family-param-name`` flags set a parameter of *every* instance of that class
  created while the parser is active (underscores become dashes, the family
  keeps its dots: ``my_ns.Load_Data`` / ``the_date`` → ``--my-ns.Load-Data-the-date``);
* parameters of classes with ``use_cmdline_section = False`` (the ``core``
  section) are bare flags: ``--workers``, ``--local-scheduler``.

The argparse parser is rebuilt from :meth:`Register.get_all_params` in two
passes: the first finds ``--module`` and the root family, the second knows every
flag. While :meth:`CmdlineParser.global_instance` is active,
:meth:`Parameter.step_value` reads class flags from :meth:`CmdlineParser.get_instance`.

Hazards:

* The active instance is **process-global**; nesting needs ``allow_override=True``.
* A bad flag or flag value raises :class:`CommandLineError` (exit status 2),
  a ``SystemExit`` subclass as argparse's own errors are, so an uncaught one
  still ends the program with its message. An unknown step family raises the
  registry's ``StepClassNotFoundException``.
* ``--help`` and ``--help-all`` print help and exit (``SystemExit(0)``).
* Flags must be spelt in full: unlike Luigi, abbreviations (``--local`` for
  ``--local-scheduler``) are not accepted, because before ``--module`` is
  imported a root flag like ``--m`` would be taken for ``--module``.
* Flag values are checked when the parser is built, so a bad ``--Family-param``
  is reported even if no instance of that class would have been created.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    import argparse

    from trun.parameter import Parameter
    from trun.step import Step

__all__ = ["CmdlineParser", "CommandLineError"]


class CommandLineError(SystemExit):
    """The command line is wrong: an unknown flag, a missing value, a value of the wrong form.

    ``str(error)`` is the one-line message; :attr:`usage` the parser's usage
    line, for a front end to print below it. Subclasses ``SystemExit`` so that
    code expecting argparse's behaviour keeps working.
    """

    #: Exit status for a usage error.
    exit_code = 2

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def format_message(self) -> str:
        """The user-facing message, without usage."""
        return self.message

    def __str__(self) -> str:
        return self.message


class _Flag(NamedTuple):
    """One flag added to the parser and what it sets."""

    option: str
    dest: str
    step_name: str
    param_name: str
    param_obj: Parameter[Any]


class _BuiltParser(NamedTuple):
    parser: argparse.ArgumentParser
    class_flags: list[_Flag]
    root_flags: dict[str, _Flag]  # param name -> flag of the root step


_parser_class: type[argparse.ArgumentParser] | None = None


def _argument_parser_class() -> type[argparse.ArgumentParser]:
    """An ArgumentParser whose errors raise :class:`CommandLineError` instead of printing and exiting."""
    global _parser_class
    if _parser_class is None:
        import argparse  # lazy: keeps ``import trun.parameter`` cheap

        class _RaisingArgumentParser(argparse.ArgumentParser):
            def error(self, message: str) -> Any:  # type: ignore[override]
                raise CommandLineError(message, usage=self.format_usage())

        _parser_class = _RaisingArgumentParser
    return _parser_class


class CmdlineParser:
    """A parsed ``trun`` command line; see the module documentation.

    Build one with :meth:`global_instance` to make its class flags visible to
    parameter lookup, then call :meth:`get_step_obj` for the root step.
    """

    _instance: ClassVar[CmdlineParser | None] = None

    @classmethod
    def get_instance(cls) -> CmdlineParser | None:
        """The parser of the command line being processed, or ``None``."""
        return cls._instance

    @classmethod
    @contextlib.contextmanager
    def global_instance(cls, cmdline_args: Sequence[str], allow_override: bool = False) -> Iterator[CmdlineParser]:
        """Parse ``cmdline_args`` and make the result the active instance for the ``with`` block.

        :raises RuntimeError: if another instance is active and ``allow_override`` is false.
        """
        previous = cls._instance
        if previous is not None and not allow_override:
            raise RuntimeError("A CmdlineParser global instance is already active; "
                               "pass allow_override=True to replace it for a nested block")
        parsed = cls(cmdline_args)
        cls._instance = parsed
        try:
            yield parsed
        finally:
            cls._instance = previous

    def __init__(self, cmdline_args: Sequence[str]) -> None:
        """Parse ``cmdline_args`` (``sys.argv[1:]`` style).

        :raises CommandLineError: for unknown flags, missing or malformed values, or no step.
        :raises StepClassNotFoundException: if the root family is not registered.
        """
        from trun.step_register import Register

        args = [str(arg) for arg in cmdline_args]
        first_pass, _ = self._build(None, False).parser.parse_known_args(args)
        self._attempt_load_module(first_pass)

        root_step = first_pass.root_step
        built = self._build(root_step, bool(getattr(first_pass, "core_help_all", False)))
        self._possibly_exit_with_help(built.parser, first_pass)
        if not root_step:
            raise CommandLineError("No step specified: name the step family to run, "
                                   "e.g. trun --module my_steps MyStep", usage=built.parser.format_usage())
        Register.get_step_cls(root_step)  # an unknown family raises here, with suggestions

        known_args, extras = built.parser.parse_known_args(args)
        if extras:
            raise self._unrecognized(extras, built.parser)
        #: The argparse namespace: class flags under ``Family_param``, root flags under ``param``.
        self.known_args = known_args
        self._root_flags = built.root_flags
        self._options_by_dest = {flag.dest: flag.option for flag in built.class_flags}
        self._check_values(built)

    # ----------------------------------------------------------------- building

    @staticmethod
    def _build(root_step: str | None, help_all: bool) -> _BuiltParser:
        import argparse

        from trun.step_register import Register

        # No abbreviations: before --module is imported, a root flag such as --m
        # would otherwise be read as an abbreviation of --module.
        parser = _argument_parser_class()(prog="trun", add_help=False, allow_abbrev=False)
        # Optional for argparse, so that --module and --help can be read before it is required.
        parser.add_argument("root_step", nargs="?", metavar="StepFamily", help="Family of the step to run.")
        taken: set[str] = set()
        class_flags: list[_Flag] = []
        root_params: list[tuple[str, Parameter[Any], Any]] = []

        for step_name, is_without_section, param_name, param_obj in Register.get_all_params():
            is_root = step_name == root_step
            help_text = (param_obj.description if (is_root or help_all or param_obj.always_in_help)
                         else argparse.SUPPRESS)
            flag_name = param_name if is_without_section else f"{step_name}_{param_name}"
            option = "--" + flag_name.replace("_", "-")
            kwargs = param_obj._parser_kwargs(param_name, step_name)
            if option not in taken:  # two classes may map to one flag; the first registered keeps it
                taken.add(option)
                parser.add_argument(option, help=help_text, **kwargs)
                class_flags.append(_Flag(option, kwargs["dest"], step_name, param_name, param_obj))
            if is_root:
                root_params.append((param_name, param_obj, help_text))

        # Bare flags (the core section) win over a root parameter of the same name,
        # which stays reachable through its --Family-param flag.
        root_flags: dict[str, _Flag] = {}
        for param_name, param_obj, help_text in root_params:
            option = "--" + param_name.replace("_", "-")
            if option in taken:
                continue
            taken.add(option)
            kwargs = param_obj._parser_kwargs(param_name)
            parser.add_argument(option, help=help_text, **kwargs)
            root_flags[param_name] = _Flag(option, kwargs["dest"], str(root_step), param_name, param_obj)

        # The core section (trun.interface) normally provides these; keep them working without it.
        for option, dest, action, help_text in (
                ("--module", "core_module", "store", "Python module to import, where the steps are defined"),
                ("--help", "core_help", "store_true", "Show help for the step given and the core flags"),
                ("--help-all", "core_help_all", "store_true", "Show help for every flag")):
            if option not in taken:
                taken.add(option)
                parser.add_argument(option, dest=dest, action=action, help=help_text)
        return _BuiltParser(parser, class_flags, root_flags)

    @staticmethod
    def _build_parser(root_step: str | None = None, help_all: bool = False) -> argparse.ArgumentParser:
        """The argparse parser for the registered steps, with ``root_step``'s own flags."""
        return CmdlineParser._build(root_step, help_all).parser

    @staticmethod
    def _attempt_load_module(known_args: argparse.Namespace) -> None:
        module = getattr(known_args, "core_module", None)
        if not module:
            return
        # As `python -m` does, look in the current directory too: `trun --module my_steps`
        # from the directory holding my_steps.py should just work. Appended, so it never
        # shadows an installed module.
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only the named module (or its package) missing is a command-line mistake;
            # a missing import inside the user's module is their bug and keeps its traceback.
            if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
                raise CommandLineError(f"--module {module}: no module named {exc.name!r} "
                                       "(is its directory on PYTHONPATH?)") from exc
            raise

    @staticmethod
    def _possibly_exit_with_help(parser: argparse.ArgumentParser, known_args: argparse.Namespace) -> None:
        if getattr(known_args, "core_help", False) or getattr(known_args, "core_help_all", False):
            parser.print_help()
            sys.exit(0)

    @staticmethod
    def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> CommandLineError:
        message = "unrecognized arguments: " + " ".join(extras)
        options = [option for action in parser._actions for option in action.option_strings]
        for token in extras:
            if not token.startswith("-"):
                continue
            close = difflib.get_close_matches(token.split("=", 1)[0], options, n=1, cutoff=0.6)
            if close:
                message += f". Did you mean {close[0]}?"
                break
        else:
            if not any(token.startswith("-") for token in extras):
                message += " (step parameters are given as --name value)"
        return CommandLineError(message, usage=parser.format_usage())

    def _check_values(self, built: _BuiltParser) -> None:
        """Parse every value given, so a bad one is reported now, naming step, flag and expected form."""
        from trun.parameter import ParameterParseError

        flags = [*built.class_flags, *built.root_flags.values()]
        for flag in flags:
            value = getattr(self.known_args, flag.dest, None)
            if not value:
                continue
            try:
                flag.param_obj._parse_in_context(value, flag.step_name, flag.param_name, flag.option)
            except ParameterParseError as exc:
                raise CommandLineError(str(exc), usage=built.parser.format_usage()) from exc

    # ----------------------------------------------------------------- results

    def _option_for_dest(self, dest: str) -> str | None:
        """The flag as typed (``--workers``, ``--Family-param``) that sets ``dest``, if there is one."""
        return self._options_by_dest.get(dest)

    def get_step_obj(self) -> Step:
        """An instance of the root step, with the root flags as constructor arguments."""
        return self._get_step_cls()(**self._get_step_kwargs())

    def _get_step_cls(self) -> type[Step]:
        from trun.step_register import Register

        return Register.get_step_cls(self.known_args.root_step)

    def _get_step_kwargs(self) -> dict[str, Any]:
        """The root step's parameters given as ``--param`` flags, parsed."""
        kwargs: dict[str, Any] = {}
        for param_name, param_obj in self._get_step_cls().get_params():
            flag = self._root_flags.get(param_name)
            if flag is None:
                continue
            value = getattr(self.known_args, flag.dest, None)
            if value:
                kwargs[param_name] = param_obj._parse_in_context(
                    value, self.known_args.root_step, param_name, flag.option)
        return kwargs
