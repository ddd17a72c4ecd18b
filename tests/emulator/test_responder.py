"""The emulator's model (responder.py): what it receives for a turn and what it returns, as plain values."""

from __future__ import annotations

from collections.abc import Sequence

from live_nb.emulator.responder import (
    CHECKING,
    THINKING,
    ContextResponder,
    Reply,
    RequestContext,
    Responder,
    ToolResult,
    Turn,
    called_function,
    quote,
)

GET_TIME = {"functionDeclarations": [{"name": "get_time", "parameters": {"properties": {"tz": {"type": "STRING"}}}}]}


def turns(*texts: str) -> tuple[Turn, ...]:
    """User/model turns alternating, numbered from 1, ten tokens each."""
    return tuple(Turn(n, "user" if n % 2 else "model", text, 10.0, {"TEXT": 10.0}) for n, text in enumerate(texts, 1))


def ask(request: str, history: Sequence[Turn] = (), **fields: object) -> RequestContext:
    window = (*history, Turn(len(history) + 1, "user", request, 5.0, {"TEXT": 5.0}))
    values: dict[str, object] = {
        "turn_number": 1, "request": request, "request_is_audio": False, "system_instruction": "",
        "turns": window, "context_tokens": sum(t.tokens for t in window),
    }
    values.update(fields)
    return RequestContext(**values)  # type: ignore[arg-type]


def test_turn_round_trips_through_its_snapshot_form() -> None:
    turn = Turn(7, "model", "hello", 2.5, {"AUDIO": 2.0, "TEXT": 0.5})
    assert Turn.from_json(turn.to_json()) == turn


def test_quote_cuts_long_text_with_an_ellipsis() -> None:
    assert quote("one two three", words=5) == '"one two three"'
    assert quote("one two three four", words=2) == '"one two…"'


def test_a_function_is_called_when_the_text_names_it() -> None:
    decls = GET_TIME["functionDeclarations"]
    assert called_function("please get_time now", decls) == ("get_time", {})
    assert called_function("Get Time tz=Europe/Paris colour=red", decls) == ("get_time", {"tz": "Europe/Paris"})
    assert called_function('get time tz="Asia/Tokyo"', decls) == ("get_time", {"tz": "Asia/Tokyo"})
    assert called_function("get_timer is another thing", decls) is None  # whole words only
    assert called_function("what time is it", decls) is None


def test_the_reply_says_what_was_asked_and_what_the_context_holds() -> None:
    reply = ContextResponder().respond(ask("what is the tide doing", turns("first words here", "an answer"),
                                           turn_number=2))
    assert reply.function_call is None
    assert reply.text.startswith('Turn 2. You asked: "what is the tide doing".')
    assert "I hold 3 turns and 25 tokens." in reply.text
    assert 'The earliest turn I remember is turn 1 (you): "first words here".' in reply.text


def test_the_first_question_is_answered_from_what_is_left_after_compression() -> None:
    history = (Turn(7, "user", "the kept start", 10.0, {"TEXT": 10.0}), Turn(8, "model", "ok", 10.0, {"TEXT": 10.0}))
    reply = ContextResponder().respond(
        ask("what did I say first?", history, forgotten_turns=6, compressions=2, last_forgotten="gone words")
    )
    assert 'The first thing you said that I still remember (turn 7) was "the kept start".' in reply.text
    assert "Anything before that was compressed away (6 turns)." in reply.text
    assert 'Compression ran 2 times and I forgot 6 turns, the last of them "gone words".' in reply.text


def test_the_system_instruction_is_reported_when_asked() -> None:
    with_si = ContextResponder().respond(ask("what is your system instruction?", system_instruction="Be a pirate."))
    assert 'My system instruction is "Be a pirate."' in with_si.text
    assert 'I follow the instruction "Be a pirate."' in with_si.text
    without = ContextResponder().respond(ask("what are your instructions?"))
    assert "I have no system instruction." in without.text


def test_function_calls_then_their_results() -> None:
    responder = ContextResponder()
    call = responder.respond(ask("get_time tz=UTC", functions=(GET_TIME,)))
    assert call == Reply(text=CHECKING, function_call=("get_time", {"tz": "UTC"}))
    result = ToolResult("get_time", {"t": 5})
    answer = responder.respond(ask("get_time tz=UTC", functions=(GET_TIME,), tool_results=(result,)))
    assert answer.function_call is None
    assert 'The tool answered: get_time returned {"t": 5}.' in answer.text
    richer = ToolResult("get_time", {"t": 6, "a": 1}, interim=2, parts=1)
    answer = responder.respond(ask("get_time tz=UTC", functions=(GET_TIME,), tool_results=(richer,)))
    assert 'get_time returned {"a": 1, "t": 6} with 1 part, after 2 interim results.' in answer.text


def test_a_thinking_model_says_a_filler_first() -> None:
    reply = ContextResponder().respond(ask("think about owls", thinking=True))
    assert reply.fillers == (THINKING,) and reply.text.startswith("Turn 1.")
    assert ContextResponder().respond(ask("think about owls")).fillers == ()


def test_spoken_requests_are_described_and_never_call_functions() -> None:
    reply = ContextResponder().respond(
        ask("[1.5 s of speech: get time]", functions=(GET_TIME,), request_is_audio=True)
    )
    assert reply.function_call is None
    assert reply.text.startswith("Turn 1. You spoke to me [1.5 s of speech: get time].")


def test_replies_are_deterministic_and_quote_length_is_a_knob() -> None:
    context = ask("one two three four five six seven eight nine ten")
    assert ContextResponder().respond(context) == ContextResponder().respond(context)
    assert 'You asked: "one two…" I hold' in ContextResponder(max_quote_words=2).respond(context).text


def test_any_object_with_respond_is_a_responder() -> None:
    class Echo:
        def respond(self, context: RequestContext) -> Reply:
            return Reply(text=context.request.upper())

    responder: Responder = Echo()
    assert responder.respond(ask("hi")) == Reply(text="HI")
