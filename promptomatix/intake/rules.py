"""What a request says in so many words, read by rules before any model is asked.

A request usually names its labels ("as positive, negative or neutral", "True or False") and
shows its kind in a word or two ("summarize", "how many", "translate ... into"). A small model
asked for a JSON spec loses both: it copies its template's example instead. So intake reads
these parts here, deterministically, and the model fills in only what they leave open
(intake.py). `read_request` is a pure function of the text.

Type cues are scored: a clause-leading verb ("Classify", "Extract") weighs most, a label list
next, other words least; the best type wins when it leads the next by `CLEAR_MARGIN`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A cue that leads a clause ("Summarize ...", "..., then extract ...") says what the task does.
LEAD_WEIGHT = 3
# A list of labels the request names is strong evidence of classification.
LABEL_LIST_WEIGHT = 3
# Other words ("sentiment", "how many") hint at a type.
WORD_WEIGHT = 1
# The rules' type stands alone when it leads the next type by this much and has a lead cue or a
# label list behind it; with less, the model's pick is asked for and a disagreement is a warning.
CLEAR_MARGIN = 2
# A label is a short phrase ("very negative", "not relevant"); longer items are not a list.
MAX_LABEL_WORDS = 4
MAX_LABELS = 20

LANGUAGES = ("english|french|german|spanish|italian|portuguese|dutch|russian|chinese|mandarin|japanese|korean"
             "|arabic|hindi|turkish|polish|swedish|norwegian|danish|finnish|greek|hebrew|vietnamese|thai"
             "|indonesian|czech|romanian|hungarian|ukrainian|latin|catalan|swahili|bengali|urdu|persian")

# Each type's cues: verbs that lead a clause, and other words. Regexes on lower-cased text.
LEAD_VERBS: dict[str, str] = {
    "classification": r"classif\w*|categori[sz]e|label|tag|sort|flag|detect|decide|determine|judge|tell|predict"
                      r"|rate|grade|score|assess|distinguish|identify whether|check whether|check if|place|assign"
                      r"|choose|pick|select|mark|is (?:it|this|the)",
    "summarization": r"summari[sz]e|condense|shorten|abridge|recap|boil down|tl;?dr",
    "translation": r"translate|render",
    "information_extraction": r"extract|pull out|pull|list|find all|find every|find the|identify all|identify the"
                              r"|highlight|get all|collect|tag all|spot|fill in|fill out|grab|harvest|capture",
    "math": r"compute|calculate|solve|count|add|subtract|multiply|divide|work out|evaluate the expression",
    "qa": r"answer|responds? to|repl(?:y|ies) to",
    "code_generation": r"implement|code",
    # The same text in other words: "correct the grammar of", "make an email sound friendlier".
    "rewriting": r"rewrite|re-write|paraphrase|simplify|rephrase|reword|formali[sz]e|proofread|copy-?edit"
                 r"|(?:correct|fix) (?:the |any |all |its |their )?(?:grammar|spelling|typos?|punctuation|mistakes)"
                 r"|make (?:it|this|that|them|these|those|the|a|an|my|our|your|their|each|every|any)(?: [\w'-]+){0,3}?"
                 r" (?:sound|read|more|less|simpler|clearer|plainer|friendlier|politer)",
    "generation": r"write|generate|compose|draft|create|produce"
                  r"|correct|fix|improve|polish|edit|make|turn|convert|expand|continue|complete|suggest|propose"
                  r"|brainstorm|describe|explain|invent|come up with",
}
WORDS: dict[str, str] = {
    "classification": r"classif\w*|categor\w*|sentiment|spam|intent|topic|polarity|stance|toxic\w*|whether"
                      r"|labels?|class(?:es)?|genre|emotion|sarcas\w*|plausib\w*|relevan\w*|urgency|priority",
    "summarization": r"summar\w*|tl;?dr|gist|key points|main points|shorter|brief(?:ly)?|condensed?|headline|digest"
                     r"|synopsis|abstract\b|pr[eé]cis|recap",
    "translation": rf"translat\w*|into (?:{LANGUAGES})|(?:in|to) (?:{LANGUAGES})\b(?! speakers)",
    "information_extraction": r"extract\w*|entities|entity|mention\w*|names? of|as a list|a list of|appear\w* in|listed"
                              r"|one per line|all (?:the )?(?:dates|names"
                              r"|people|places|prices|amounts|emails|numbers|organi[sz]ations|locations)"
                              r"|spans?|fields? from|key[- ]value",
    "math": r"how many|how much|arithmetic|math\w*|word problems?|equations?|a number|numeric(?:al)?|the sum"
            r"|the total|percent\w*|average|the product of|integer|final number|digits?|decimals?|celsius|fahrenheit|kelvin"
            r"|kilo\w+|miles|pounds|ounces|liters|litres|units?\b",
    "qa": r"questions?|passage|trivia|context|faq|knowledge|ask(?:s|ed)? (?:you )?about",
    "code_generation": r"python|javascript|typescript|java\b|sql|bash|shell|regex|regular expression|c\+\+|rust"
                       r"|golang|function|script|program|snippet|code|query|class\b|method|unit tests?|html|css",
    "rewriting": r"paraphras\w*|rewrit\w*|reword\w*|rephras\w*|simpl(?:er|ify|ified)\b|plain (?:english|language)"
                 r"|formal(?:ly)?\b|grammar|grammatical\w*|spelling|typos?\b|proofread\w*|gender-neutral"
                 r"|(?:keep|keeping|preserv\w*|same) (?:its |the |their )?meaning|without changing|in other words",
    "generation": r"story|poem|e-?mail|slogan|tweet|essay|description|caption|letter|reply"
                  r"|polite|tone|style|creative|title",
}

NUMBER_WORDS = r"\d+|one|two|three|four|five|six|seven|eight|nine|ten|a few|several"
# Words that make a request code by themselves ("write a regex").
CODE_WORDS = (r"python|javascript|typescript|java\b|sql|postgres\w*|mysql|sqlite|bash|shell (?:script|command)|regex"
              r"|regular expression"
              r"|c\+\+|rust\b|golang|go func|func\b|html|css|one-liner|powershell|yaml|dockerfile|cron\w*|makefile"
              r"|kotlin|swift|ruby|php|perl|scala|haskell|matlab|latex|jq|awk|sed\b|excel formula|spreadsheet formula")
# Nouns that name what is asked about a text, not the text itself ("the sentiment of a review").
ATTRIBUTES = frozenset(("sentiment", "topic", "type", "category", "language", "intent", "emotion", "tone",
                        "polarity", "stance", "genre", "label", "class", "urgency", "priority", "severity",
                        "toxicity", "subject", "mood", "difficulty", "quality", "relevance", "rating", "kind",
                        "domain", "author", "sentiments", "register", "level", "formality", "risk", "stage"))
GENERIC_ATTRIBUTES = frozenset(("type", "kind", "category", "class", "sort"))
# Nouns that stand for a quantity of something ("a list of features"): the noun after "of" counts.
CONTAINERS = frozenset(("list", "set", "pair", "piece", "sequence", "series", "number", "collection", "couple",
                        "bunch", "group", "batch", "snippet", "excerpt", "passage", "paragraph"))
STOP_NOUNS = frozenset(("one", "following", "given", "way", "it", "them", "each", "all", "answer", "label", "labels",
                        "task", "request", "output", "input", "word", "words", "only", "following", "text's"))
# Words that end a label list's last item ("as positive or negative based on its tone").
_LIST_END = re.compile(r"\s+(?:based|depending|according|for|in|with|from|using|given|by|because|when|if|that"
                       r"|which|so|to|then|and|or|on|about|of|per|where|while|without|at|as|only|otherwise|"
                       r"e\.g|i\.e|respectively|accordingly|is|are|should|must|will|can)\b.*$", re.IGNORECASE)
# Where a label list may start: after a noun that announces it ("labels:"), a verb or
# preposition that takes it ("as", "into", "answer with"), a "whether ... is" clause, or a colon.
_ANCHORS = re.compile(
    r"(?:\b(?:labels?|categories|classes|options|choices|tags|values|answers?|outputs?)\s*(?:are|is)?\s*:?"
    r"|\b(?:as|into|between|either|with|among|one of|(?:which|that) (?:is|are)|(?:must|should|can|will|may) be"
    r"|(?:chosen|picked|selected|taken|drawn) (?:from|among))"
    r"|\b(?:on )?(?:the |a )?(?:scale|range)(?: of| from)?|[^\S\n][—–-]"
    r"|\b(?:answer|respond|reply|output|return)(?:ing)?(?: with| in)?"
    r"|\b(?:whether|if)\b[^.;:?!\n]*?\b(?:is|are|was|were|be|sounds?|seems?|looks?|reads?|has|contains?)"
    r"|\b(?:is|are) (?:it|this|that|these|the)(?: \w+)?|:)"
    r"(?:[^\S\n]+(?:either|only|just|exactly))?(?:[^\S\n]+one of(?: the(?: \w+)?)?(?: following)?(?: \w+)?[^\S\n]*:?)?"
    r"[^\S\n]+",
    re.IGNORECASE)
# Words inside a list's first item that show the list starts after them ("comments as toxic").
_FIRST_ITEM_START = re.compile(r"^.*(?:(?:^|\s)(?:as|into|with|between|either|one of|among|from|is|are|(?:must|should"
                               r"|can|will|may) be)\s|:\s*|\s[—–-]\s)", re.IGNORECASE)
_NUMBERED = re.compile(r"(?:^|\s)\(?(\d{1,2}|[a-h])[).]\s+(.+?)(?=\s+\(?(?:\d{1,2}|[a-h])[).]\s|[;.]?\s*$|[;\n])")
_QUOTED = re.compile(r"(?:(?<=^)|(?<=[\s(\[:,/]))([\"“‘'`])([^\"”’'`\n]{1,40}?)([\"”’'`])(?=[\s,.;:)\]/?!]|$)")
_SCALE = re.compile(r"\b(?:scale|score|rating|rate\w*)\b[^.;]*?\b(?:of|from)\s+(\d{1,2})\s*(?:to|-|–)\s*(\d{1,2})\b",
                    re.IGNORECASE)
# "Input fields: question, context." / "Outputs: `vendor`, `total`."
_DECLARATION = re.compile(r"\b(?P<kind>inputs?|outputs?|fields? (?:in|out))(?P<field> fields?)?\s*(?::|are|is)\s*"
                          r"(?P<names>(?:`\w+`(?:\s*(?:,|\band\b)\s*(?=`))?)+|(?<=(?:ld|ds|in|ut):\s)[A-Za-z_]\w*"
                          r"(?:\s*(?:,|\band\b)\s*[A-Za-z_]\w*)*(?=\s*(?:[.;\n]|$)))", re.IGNORECASE)
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
# "write a prompt that ...": a request for the prompt, not the task's own verb.
_META_REQUEST = re.compile(r"\b(?:write|create|build|make|design|generate|give me|craft|develop|set up)\s+(?:me\s+)?"
                           r"(?:a|an|the)\s+(?:\w+\s+)?(?=(?:prompt|model|classifier|system|tool|bot|assistant)\b)")
_MARKER = re.compile(r"\[[A-Z_]+\]:?")
_SENTENCE_END = re.compile(r"(?<!\b[A-Za-z])[.;!?](?:\s|$)|\n")
_CLAUSE_START = re.compile(
    r"(?:^|[.;:!?]\s+|,\s+(?:then\s+|and\s+)?|\band then\s+|\bthen\s+|\n\s*|\b(?:prompt|model|something|system"
    r"|classifier|tool|assistant|bot)\s+(?:that|which|to)\s+(?:can\s+|will\s+)?)(?:[-*•]\s*)?(?:(?:can|could|would"
    r"|will) (?:you|u) (?:please |pls )?|please |pls |kindly |help me |i (?:need|want) (?:you |to )?)?")
_NOUN_PHRASE = re.compile(
    r"\b(?:a|an|the|each|every|given|this|some|any|one|two|three|its|their|your)\s+((?:[a-z][a-z'-]*\s+){0,2}?"
    r"[a-z][a-z'-]*?)(?=\s+(?:as|by|into|from|of|in|on|about|with|for|and|or|to|that|which|using|based|according|if"
    r"|whether|so|it|is|are|was|were|has|have|written|given|sent|posted|taken|between|mentioned|expects?)\b|[,.:;?!)]|$)")


@dataclass(frozen=True)
class RuleReading:
    """What the rules read in a request. `task_type` is None when no cue points anywhere;
    `clear` says whether it stands without the model (see `CLEAR_MARGIN`); `cue` quotes the
    words that decided it. `labels` are the labels the request lists, spelled as it spells them
    (empty when it lists none or is not a classification); `input_noun` and `output_noun` are
    field names taken from the request's own nouns, when it has fitting ones."""

    task_type: str | None
    clear: bool
    cue: str
    scores: tuple[tuple[str, int], ...]
    labels: tuple[str, ...]
    input_noun: str | None
    output_noun: str | None
    input_fields: tuple[str, ...] = ()
    output_fields: tuple[str, ...] = ()

    def candidates(self) -> tuple[str, ...]:
        """The types the rules found any cue for, best first."""
        return tuple(name for name, score in self.scores if score > 0)


def read_request(text: str) -> RuleReading:
    """The rules' reading of `text`, a task request in plain language."""
    line = _MARKER.sub("\n", re.sub(r"[^\S\n]+", " ", text)).strip()
    named_inputs, named_outputs = named_fields(line)
    labels = listed_labels(_DECLARATION.sub(" ", line))
    scores, cues = _type_scores(line, bool(labels))
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    task_type = best if top > 0 else None
    strong = task_type is not None and cues[best][0]
    contested = any(cue[0] for name, cue in cues.items() if name != best)
    clear = bool(strong) and (top - second >= CLEAR_MARGIN or not contested)
    inp, out = nouns(line, task_type)
    return RuleReading(task_type, clear, cues[best][1] if task_type else "", tuple(ranked),
                       labels if task_type in (None, "classification") else (), inp, out, named_inputs, named_outputs)


def named_fields(line: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Field names the request declares ("Input fields: question, context", "Output: `answer`")
    or marks as code (`premise`): outputs when an output verb leads to them, inputs otherwise."""
    inputs: list[str] = []
    outputs: list[str] = []
    for found in _DECLARATION.finditer(line):
        names = [_snake(n) for n in re.split(r"\s*(?:,|\band\b)\s*", found.group("names")) if n.strip(" `")]
        kind = found.group("kind").lower()
        (outputs if kind.startswith("output") or kind.endswith("out") else inputs).extend(
            n for n in names if _FIELD_NAME.match(n))
    previous_end, is_output = -1, False
    for found in re.finditer(r"`([A-Za-z_][A-Za-z0-9_]*)`", line):
        if found.group(1) not in inputs + outputs:
            gap = line[previous_end:found.start()] if previous_end >= 0 else ""
            if not re.fullmatch(r"\s*(?:,|,?\s*and|,?\s*or)\s*", gap):  # a list goes on: same side
                clause = re.split(r"[.;,:]\s", line[max(0, found.start() - 40):found.start()].lower())[-1]
                is_output = bool(re.search(r"\b(?:output|outputs|return|returns|produce|write|generate|give"
                                           r"|predict|field|fill|put|store|save|place)\b", clause))
            (outputs if is_output else inputs).append(found.group(1))
        previous_end = found.end()
    return tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(n for n in outputs if n not in inputs))


def listed_labels(line: str) -> tuple[str, ...]:
    """The labels `line` enumerates, in its own spelling: numbered items, quoted words, a scale
    ("from 1 to 5"), or a list after an anchor ("as A, B or C", "one of: A, B, C", "whether ... is
    A or B"). "whether ... or not" (or "whether" with no alternatives) reads as yes / no."""
    for found in (_numbered(line), _quoted(line), _scale(line), _bulleted(line), _anchored(line), _list_line(line),
                  _slashed(line)):
        if found:
            return found
    if re.search(r"\b(?:whether|if)\b[^.;?!]*?\bor not\b", line, re.IGNORECASE) or re.match(
            r"^\W*(?:decide|determine|detect|tell|predict|judge|check|identify|say|classify|answer)\s+"
            r"(?:whether|if)\b", line, re.IGNORECASE):
        return ("yes", "no")
    return ()


def _bulleted(text: str) -> tuple[str, ...]:
    """Options as bullets under a line that announces them ("Options:\\n- agree\\n- disagree")."""
    found = re.search(r":[^\S\n]*\n((?:[^\S\n]*[-*•][^\S\n]*[^\n]+(?:\n|$)){2,})", text)
    if not found:
        return ()
    return _valid(re.sub(r"^\s*[-*•]\s*", "", item) for item in found.group(1).strip().splitlines())


def _list_line(text: str) -> tuple[str, ...]:
    """A line that is nothing but a list of short items ("P1, P2, P3 or P4"; two items need an
    "or", "and", "/" or "|" between them)."""
    item = r"[\w\"'-]+(?:[^\S\n]+[\w\"'-]+){0,3}"
    for line in text.splitlines():
        joined = rf"\s*{item}(?:\s*(?:,|/|\||,?\s+or\b|,?\s+and\b)\s*{item})+\s*\.?\s*"
        if re.fullmatch(joined, line) and (line.count(",") >= 2 or re.search(r"/|\||\bor\b|\band\b", line)):
            found = _list_at(line.strip().rstrip("."), announced=True)
            if found:
                return found
    return ()


def _slashed(line: str) -> tuple[str, ...]:
    """Single words joined by slashes anywhere ("qualified/unqualified"), not a path or a date."""
    found = re.search(r"(?<![\w/.:-])([A-Za-z][\w'-]*(?:/[A-Za-z][\w'-]*)+)(?![\w/])", line)
    return _valid(found.group(1).split("/")) if found and "//" not in found.group(1) else ()


def _numbered(line: str) -> tuple[str, ...]:
    items = [m.group(2).strip(" ,;") for m in _NUMBERED.finditer(line)]
    items = [_trim_last(i) for i in items]
    return _valid(items) if len(items) >= 2 else ()


def _quoted(line: str) -> tuple[str, ...]:
    items = [m.group(2).strip() for m in _QUOTED.finditer(line)
             if not (m.group(1) == "'" and m.group(3) != "'") and m.group(1) != "`"]
    return _valid(items) if len(items) >= 2 else ()


def _scale(line: str) -> tuple[str, ...]:
    found = _SCALE.search(line)
    if not found:
        return ()
    low, high = int(found.group(1)), int(found.group(2))
    return tuple(str(n) for n in range(low, high + 1)) if 2 <= high - low + 1 <= 11 else ()


def _anchored(line: str) -> tuple[str, ...]:
    """The first anchor in `line` followed by a list of at least two short items."""
    for anchor in _ANCHORS.finditer(line):
        announced = anchor.group(0).rstrip().endswith(":")
        items = _list_at(line[anchor.end():], announced)
        if items:
            if len(items) == 2 and items[1].lower() == "not":  # "whether it is spam or not"
                return ("yes", "no")
            return items
    return _whether_pair(line)


def _whether_pair(line: str) -> tuple[str, ...]:
    """"whether a sentence describes a plausible or implausible situation": the pair."""
    clause = re.search(r"\bwhether\b([^.;:?!\n]*)", line, re.IGNORECASE)
    pair = clause and re.search(r"\b([\w-]+) or ([\w-]+)\b", clause.group(1))
    if not pair or pair.group(2).lower() == "not" or pair.group(1).lower() in ("a", "an", "the", "not"):
        return ()
    return _valid([pair.group(1), pair.group(2)])


def _list_at(rest: str, announced: bool = False) -> tuple[str, ...]:
    """A list at the start of `rest`: items separated by commas, `or` and `and` (or by slashes
    alone, "A/B/C"), ending after the item that follows the final `or`/`and`, or at the end of
    the sentence. A bare comma series needs three items, or two after an announcing colon."""
    end = _SENTENCE_END.search(rest)
    chunk = rest[:end.start()] if end else rest
    items = _series(re.split(r"(,\s*(?:or|and)\s+|,\s*|\s+or\s+|\s+and\s+|\s+[|/]\s+)", chunk), announced)
    if items:
        return items
    slashed = re.match(r"\s*([\w'-]+(?:\s*/\s*[\w'-]+)+)", chunk)  # "A/B/C": a slash binds single words
    return _valid(slashed.group(1).split("/")) if slashed else ()


def _series(parts: list[str], announced: bool) -> tuple[str, ...]:
    if any("`" in part for part in parts[:3]):
        return ()  # `names` in backticks are fields, not labels
    items, seps = [_FIRST_ITEM_START.sub("", parts[0])], []
    for i in range(1, len(parts) - 1, 2):
        sep, item = parts[i].strip(" ,") or ",", parts[i + 1]
        seps.append(sep)
        items.append(item)
        if sep in ("or", "and"):
            break
    if len(items) < 2:
        return ()
    if set(seps) == {","} and (len(items) < len(parts[0::2]) or len(items) < (2 if announced else 3)):
        return ()  # a bare comma series must run to the sentence's end: "A, B, C."
    items[-1] = _trim_last(items[-1])
    items = _first_in_kind(items)
    if re.match(rf"^(?:{NUMBER_WORDS})$", items[0], re.IGNORECASE) and len(items[-1].split()) > 1:
        return ()  # "in two or three sentences": a count, not labels
    return _valid(items)


def _first_in_kind(items: list[str]) -> list[str]:
    """Drop lower-case words that lead a list of capitalised labels ("intents Refund, Other")."""
    first = items[0].split()
    if len(first) > 1 and all(i[:1].isupper() for i in items[1:]) and first[-1][:1].isupper():
        while len(first) > 1 and not first[0][:1].isupper():
            first.pop(0)
    return [" ".join(first), *items[1:]]


def _trim_last(item: str) -> str:
    return _LIST_END.sub("", re.split(r"\s*(?::|\(|\s-\s)", item.strip())[0])


def _valid(items) -> tuple[str, ...]:
    cleaned = []
    for item in items:
        item = re.sub(r"^(?:a|an|the|either|label|labels|category|class)\s+", "", item.strip(), flags=re.IGNORECASE)
        item = item.strip(" \"'“”‘’`*()[]{}.,;:")
        if not item or len(item.split()) > MAX_LABEL_WORDS or len(item) > 40:
            return ()
        cleaned.append(item)
    unique = tuple(dict.fromkeys(cleaned))
    if len(unique) < 2 or len(unique) > MAX_LABELS or len({u.lower() for u in unique}) < len(unique):
        return ()
    return unique


def _type_scores(line: str, has_labels: bool) -> tuple[dict[str, int], dict[str, tuple[bool, str]]]:
    """Each type's cue score and its strongest cue (whether a lead verb, and its words)."""
    lower = _META_REQUEST.sub(" ", line.lower())
    starts = [m.end() for m in _CLAUSE_START.finditer(lower)]
    scores: dict[str, int] = {}
    cues: dict[str, tuple[bool, str]] = {}
    for name in LEAD_VERBS:
        lead = re.compile(rf"(?:{LEAD_VERBS[name]})(?:s|es)?\b")
        leads = [m.group(0) for s in starts if (m := lead.match(lower, s))]
        words = re.findall(rf"\b(?:{WORDS[name]})", lower)
        score = LEAD_WEIGHT * len(leads[:1]) + WORD_WEIGHT * min(len(words), 3)
        if name == "classification" and has_labels:
            score += LABEL_LIST_WEIGHT
        scores[name] = score
        cue = leads[0] if leads else ("a label list" if name == "classification" and has_labels
                                      else words[0] if words else "")
        cues[name] = (bool(leads) or (name == "classification" and has_labels), cue)
    overlaps = _resolve_overlaps(lower, scores)
    for name, cue in overlaps.items():
        scores[name] += LEAD_WEIGHT
        cues[name] = (True, cue)
    for general in ("generation", "rewriting"):
        if overlaps.keys() & {"code_generation", "summarization", "translation"} and cues[general][0]:
            scores[general] -= LEAD_WEIGHT  # its verb ("write", "turn ... into") was read as theirs
            cues[general] = (False, cues[general][1])
    if cues["rewriting"][0] and cues["generation"][0] and cues["rewriting"][1].startswith(cues["generation"][1]):
        scores["generation"] -= LEAD_WEIGHT  # "fix the grammar", "make it sound ...": a rewrite's verb
        cues["generation"] = (False, cues["generation"][1])
    if has_labels and cues["qa"][0]:  # "Answer yes or no: ..." picks a label
        scores["qa"] -= LEAD_WEIGHT
        scores["classification"] += LEAD_WEIGHT
        cues["classification"] = (True, cues["qa"][1])
    return scores, cues


def _resolve_overlaps(lower: str, scores: dict[str, int]) -> dict[str, str]:
    """Cues that mean another type in company, each worth a lead verb: code words make "write"
    code; "write a summary" is a summary; "answer with a number" and "how many" are math."""
    leads = {}
    verb = re.search(r"\b(?:write|rewrite|refactor|generate|create|implement|produce|complete|fix|give|turn|convert"
                     r"|build|make|craft)\b",
                     lower)
    code = re.search(rf"\b(?:{CODE_WORDS})", lower)
    if verb and (scores["code_generation"] >= 2 or code):
        leads["code_generation"] = verb.group(0)
    elif code and re.search(r"\b(?:need|want|give me|get me)\b", lower):  # "need a Go func that ..."
        leads["code_generation"] = code.group(0)
    found = re.search(r"\b(?:write|generate|produce|create|give|make)\b[^.]*\b(?:summary|summaries|tl;?dr|digest"
                      r"|synopsis|abstract|pr[eé]cis|recap)\b|\b(?:turn|condense|reduce|boil|shrink|distil+)\w*\b[^.]*"
                      r"\binto (?:a |an )?(?:short|brief|concise|single|one|two|three|four|five|\d+)\b[^.]*?\b"
                      r"(?:paragraph|sentences?|summary|recap|overview|bullets?|lines?|points)\b", lower)
    if found:
        leads["summarization"] = found.group(0)
    found = re.search(r"\b(?:answer|respond|reply|output|return|give)\w*\b[^.]*\b(?:(?:a|one|the final|single"
                      r"|only the) (?:number|integer)|numeric(?:al)? (?:answer|value|result)|an integer)"
                      r"|\bhow (?:many|much)\b", lower)
    if found:
        leads["math"] = found.group(0)
    found = re.search(rf"\b(?:convert|turn|render|put|rewrite|change|transform)\b[^.]*\binto (?:{LANGUAGES})\b"
                      rf"|\bfrom (?:{LANGUAGES}) (?:in)?to (?:{LANGUAGES})\b"
                      rf"|\b(?:{LANGUAGES})\s*(?:→|->|=>|—>)\s*(?:{LANGUAGES})\b", lower)
    if found:
        leads["translation"] = found.group(0)
    return leads


def nouns(line: str, task_type: str | None) -> tuple[str | None, str | None]:
    """Field names from the request's nouns: the text it works on, and what it asks about that
    text ("the sentiment of a movie review": review -> sentiment; "extract the person names from
    a sentence": sentence -> person_names). None where it names none."""
    lower = line.lower()
    out = _extracted(lower) if task_type == "information_extraction" else None
    inp = None
    for phrase, end in ((m.group(1), m.end()) for m in _NOUN_PHRASE.finditer(lower)):
        head = _head(phrase)
        if not head or (out and out.endswith(head)):
            continue
        if head in CONTAINERS and lower[end:end + 4].startswith(" of"):
            continue  # "a list of features": the features are the input
        if head in ATTRIBUTES and out is None:
            of = re.match(r" of (?:an? |the )?([a-z]+)", lower[end:])
            # "the type of answer": answer_type (a bare "type" says little)
            out = f"{_snake(of.group(1))}_{head}" if of and head in GENERIC_ATTRIBUTES else head
        elif inp is None:
            inp = head
        if inp and out:
            break
    if task_type in ("math", "qa"):  # "count the objects mentioned in a question": the question is the input
        asked = re.search(r"\b(question|problem|puzzle|word problem)s?\b", lower)
        inp = _snake(asked.group(1)) if asked else inp
    return inp, (out if out != inp else None)


def _extracted(lower: str) -> str | None:
    """What an extraction pulls out, as a field name ("extract the person names" -> person_names)."""
    found = re.search(r"\b(?:extract|pull out|list|find|identify|highlight|get|collect)\s+(?:all\s+|every\s+|each\s+)?"
                      r"(?:of\s+)?(?:the\s+|any\s+)?((?:[a-z]+\s+){0,2}?[a-z]+?)(?=\s+(?:mentioned|from|in|of|that"
                      r"|which|named|appearing|and)\b|[,.:;]|$)", lower)
    name = _snake(found.group(1)) if found else ""
    return name if name and name not in STOP_NOUNS and _FIELD_NAME.match(name) else None


def _head(phrase: str) -> str | None:
    words = [w for w in phrase.split() if w not in ("of", "and", "or")]
    if not words:
        return None
    head = _snake(words[-1])
    return None if head in STOP_NOUNS or not re.match(r"^[a-z][a-z0-9_]{1,30}$", head) else head


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
