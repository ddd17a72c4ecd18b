"""Write a WAV of a sentence spoken by the offline TTS, for Chromium's fake microphone.

    python scripts/make_speech_wav.py "What is the weather like in Paris?" out.wav [--voice Kore]
        [--rate 48000] [--pad 1.0]

The file is 16-bit PCM mono, 48 kHz by default (Chromium's audio path runs at 48 kHz, so its
``--use-file-for-fake-audio-capture=out.wav`` plays it without resampling), with ``--pad`` seconds of
silence before and after so turn detection sees the speech start and end. Chromium loops the file;
append ``%noloop`` to the path in that flag to play it once. The words are printed with the times
they start (from eSpeak NG's word events), which browser tests can use to know when speech ends.
"""

from __future__ import annotations

import argparse
import sys
import wave

from live_nb.emulator import speech


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("text", help="the sentence to speak")
    parser.add_argument("out", help="the WAV file to write")
    parser.add_argument("--voice", default="Kore", help="a Live API voice name (default Kore: heard back best)")
    parser.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (default 48000)")
    parser.add_argument("--pad", type=float, default=1.0, help="seconds of silence before and after (default 1)")
    parser.add_argument("--language", default=None, help="speechConfig.languageCode, e.g. en-US")
    args = parser.parse_args(argv)
    if not speech.synthesis_available():
        print(speech.unavailable_reason(), file=sys.stderr)
        return 1
    spoken = speech.speak(args.text, args.voice, rate=args.rate, language=args.language)
    pad = b"\0\0" * round(args.pad * args.rate)
    with wave.open(args.out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(args.rate)
        wav.writeframes(pad + spoken.pcm + pad)
    total = spoken.duration + 2 * args.pad
    end = args.pad + spoken.duration  # includes eSpeak's short pause after the last word
    print(f"{args.out}: {total:.2f} s at {args.rate} Hz, voice {spoken.voice}, speech {args.pad:.2f}-{end:.2f} s")
    for w in spoken.words:
        print(f"  {args.pad + w.sample / args.rate:6.2f} s  {spoken.text[w.start : w.end]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
