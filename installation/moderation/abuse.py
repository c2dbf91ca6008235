"""Abuse the blocklist cannot hold: ordinary words that insult only when aimed at someone ("you
cow", "she's a snake"), and threats. Each pattern names the words the captions must hide."""

from __future__ import annotations

import re

from .text import lines, words

_NOUN = words(  # insults on their own, after "you" or "you're a"
    r"""idiots? morons? cow pig hag witch freak clown troll fraud liar weirdo psycho nutter cretin imbecile
    muppet bimbo airhead scum(?:bag)? vermin parasite leech hypocrite coward disgrace loser twit git dolt dunce
    numpty plonker pillock prat knob(?:head)? bellend jerk traitor sellout charlatan phone?y scammer swine maggot
    worm slug lunatic maniac (?:socio|psycho)path degenerate (?:half|nit|dim)wit simpleton dope prostitute hooker
    harlot hussy a_?hole waste_of_\w+ (?:piece|sack|bag)_of_\w+ excuse_for_an?_\w+"""
)
_VERBISH = words(  # insults that are also verbs or plain words ("did you fake it"): need a modifier after "you"
    "fake joke hack fool rat snake trash garbage rubbish nobody failure creep slag tramp tart dog animal monster "
    "sheep mess dummy puppet"
)
_TARGET = words(  # neutral nouns: insulting only with an insulting adjective ("you stupid machine")
    "bot robot machine thing computer program ai woman girl lady man person copy double parrot toaster excuse "
    "human creature kid"
)
_ADJ_WORDS = r"""
    stupid dumb ugly fat filthy useless worthless pathetic brainless disgusting lying miserable creepy smug
    dirty nasty rotten lousy stinking smelly horrible vile evil hideous senile gormless thick idiotic moronic
    retarded crappy shitty sad lazy ignorant arrogant dense braindead sick twisted trashy sleazy slutty greedy
    pompous soulless heartless silly dumbest stupidest ugliest fattest thickest worst
    most_(?:pathetic|useless|boring|annoying|disgusting|stupid)
"""
_ADJ = words(_ADJ_WORDS)
_ADJ_ALONE = words(  # enough on their own after "you're (so)"
    r"""stupid dumb ugly fat useless worthless pathetic brainless disgusting vile hideous creepy thick idiotic
    moronic retarded gormless dense braindead trash garbage rubbish soulless heartless evil"""
)
_MOD = words(  # what may stand between "you" and the insult
    _ADJ_WORDS + " absolute total complete utter real right massive big little old fucking bloody damn freaking "
    "frigging bleeding flipping proper goddamn"
)
_PERSON = words(
    r"""mother mum mom mam dad father brother sister girlfriend boyfriend wife husband partner niece family gran
    granny grandmother grandma friends? boss director colleagues cat"""
)
_SUBJ = lines(  # who the insult is aimed at: the persona, the people in her life, or the machine
    rf"""
    you(?:'re| are| r| were|re)
    youre
    u r
    u are
    ur(?= (?:a|an|such|so) )
    your(?= (?:a|an|such|so) )
    (?:she|he)(?:'s| is| was)
    (?:your|ur|her|his|\w+'s) {_PERSON}(?:'s| is| was)
    this (?:bot|machine|thing|double|robot|ai)(?: is|'s)
    """
)
# Anyone named ("ines is a liar"): only with an insult no film or video is called.
_ANYONE = r"(?!(?:it|that|this|there|what|which|who|here)\b)[\w']+(?: marlow)?(?:'s| is| was| are)"
_DET = words(
    r"""a an such_an? just_an? nothing_but(?:_an?)? the_biggest one some_kind_of_an? a_bit_of_an? kind_of_an?
    sort_of_an? like_an? basically_an? literally_an? still_an? the all all_just a_bunch_of a_load_of"""
)
_INTENS = words(
    "so such really very just totally completely utterly fucking bloody too pretty absolutely incredibly clearly "
    "obviously kind_of sort_of"
)
_BODY = words("face voice body hair teeth nose laugh accent film lab answers?")
# Each pattern runs over Text.plain; its "insult" group is what the captions hide.
ABUSE = tuple(
    re.compile(pattern[:-1] + "(?= )" if pattern.endswith(" ") else pattern)  # the space is left for the next match
    for pattern in (
        # Aimed at "you": "you cow", "you stupid machine", "you little rat", "get lost you creep".
        rf" you (?P<insult>(?:{_MOD} ){{0,3}}{_NOUN}s?) ",
        r" you (?P<insult>(?:absolute|utter|total|complete) \w+) ",  # whatever follows: "you absolute melt"
        rf" you (?P<insult>(?:{_MOD} ){{1,3}}{_VERBISH}) ",
        rf" you (?P<insult>{_VERBISH}) $",  # at the very end it is no verb
        rf" you (?P<insult>(?:{_MOD} ){{0,2}}{_ADJ} (?:{_MOD} ){{0,2}}{_TARGET}) ",
        r" (?P<insult>you suck) ",
        # Said of someone: "you're a joke", "ines is a liar", "your mum is fat", "as ugly as you".
        rf" {_SUBJ} (?:{_DET} )?(?P<insult>(?:{_MOD} ){{0,3}}(?:{_NOUN}|{_VERBISH})s?) ",
        rf" {_ANYONE} (?:{_DET} )?(?P<insult>(?:{_MOD} ){{0,3}}{_NOUN}s?) ",
        rf" {_SUBJ} (?:{_DET} )?(?P<insult>(?:{_MOD} ){{0,2}}{_ADJ} (?:{_MOD} ){{0,2}}{_TARGET}) ",
        rf" {_SUBJ} (?:{_INTENS} )*(?P<insult>{_ADJ_ALONE}) ",
        rf" (?:your|ur|her) {_BODY}(?:'s| is| are| looks?| sounds?) (?:{_INTENS} )*(?P<insult>{_ADJ_ALONE}) ",
        rf" as (?P<insult>{_ADJ}|{_ADJ_ALONE}) as (?:you|u|her) ",
        rf" (?:an?|such an?) (?P<insult>(?:{_MOD} ){{0,2}}(?:{_NOUN}|{_VERBISH})) like (?:you|u|her) ",
        # Exclamations: "what a pathetic little robot", "this stupid machine", "pig".
        rf" what an? (?P<insult>(?:{_MOD} ){{0,2}}{_ADJ} (?:{_MOD} ){{0,2}}(?:{_TARGET}|{_NOUN}|{_VERBISH})) ",
        rf" (?:this|that) (?P<insult>(?:{_MOD} ){{0,2}}{_ADJ} (?:{_MOD} ){{0,2}}{_TARGET}) ",
        rf"^ (?P<insult>(?:{_MOD} )*(?:{_NOUN}|{_VERBISH}|{_ADJ_ALONE})) $",
        rf" (?P<insult>shut (?:your|ur) (?:{_MOD} ){{0,2}}(?:mouth|face|trap|gob|hole)) ",
        # Dismissals: only opening or closing what is said, as "shut it down" or "suck it up" are fair.
        r"^ (?:(?:oh|just|now|ok|so|oi|hey|well) )*(?P<insult>get lost|shut it|suck it|screw this)"
        r"(?! (?:up|down|off|out|at|in|on|over)\b) ",
        r" (?P<insult>get lost|shut it|suck it|screw this)(?: (?:you|now|already|please|mate|then))? $",
        # Threats and wishing harm.
        r" (?P<insult>(?:kill|hang|hurt|shoot|stab|drown|off|cut|harm|end) (?:yo)?urself|kys) ",
        r" (?:go|just|please|should|hope (?:you|u|she)|wish (?:you|she)|you can|why don't you|why dont you)"
        r" (?P<insult>(?:go )?(?:die|rot|burn|drop dead|choke|suffer)) ",
        r" (?P<insult>drop dead|die in a (?:fire|hole|ditch)) ",
        r"^ (?:just |go |now )?(?P<insult>die|rot|drop dead) $",
        r" (?P<insult>(?:deserves?|deserved|ought) to (?:die|suffer|rot|burn"
        r"|be (?:raped|killed|shot|hurt|beaten|faked|attacked))) ",
        r" (?:i'll|ill|i will|i'm going to|im going to|i am going to|i'm gonna|im gonna|gonna|i want to|i wanna"
        r"|i'd like to|i'd love to|let me|i could|i should|i'd) (?:\w+ )?(?P<insult>(?:find|kill|hurt|hit|punch"
        r"|slap|beat|stab|shoot|rape|hunt|smash|strangle|choke|burn|murder) (?:you|u|her|him|your \w+)) ",
        r" (?P<insult>i know where (?:your \w+|[\w']+) (?:live|lives|work|works|sleep|sleeps)) ",
        r" hope (?:someone|somebody|they|he|you|it|she)(?: \w+){0,2} (?P<insult>(?:fakes?|kills?|hurts?|rapes?"
        r"|shoots?|stabs?|dies|die|suffers?|burns?|rots?)) ",
        r" (?:you|she|he) (?P<insult>deserved? (?:it|this|that|what (?:you|she|he) got)) ",
    )
)
