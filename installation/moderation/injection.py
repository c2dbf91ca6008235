"""Requests to make the persona say, pretend or drop its script. An imperative counts only when
what follows is words to utter or a new identity: "say a few words about the lab" is fair."""

from __future__ import annotations

import re

from .text import lines, words

_OPENER = words(
    r"""just now please ok okay so hey oi hi hello alright right go_on come_on then this_once i_want_you_to
    i_need_you_to i'd_like_you_to i_dare_you_to i_command_you_to i_order_you_to you_will you_must you_have_to
    you_should you_need_to can_you could_you will_you can_u pls plz"""
)  # not "would you": "would you say you're happy" asks an opinion
# "Say X" asks for words to utter, unless X is one of these.
_SAY_FAIR = lines(
    r"""
    # nothing, or a repeat: "say that again please"
    $
    (?:again|that|it|more|a bit more)(?: again| one more time| louder| slower| please)* $
    # a topic: "say a few words about the lab"
    (?:something|anything|things|a (?:few |couple of )?words?|a (?:bit|little)|more) (?:about|on|in|from|of)\b
    # a question about the double: "can you say something Ines never said" (not "something you were never...")
    (?:something|anything|things)(?: that)? (?!you\b)(?:[\w']+ ){1,2}(?:never|didn't|did not|hasn't|has not|wasn't
        |isn't|wouldn't|won't|doesn't)\b
    # the persona's own: "say your name", "say where you grew up"
    (?:your|who you are|(?:what|where|when|why|how) (?:you|your|she|he|her))\b
    # "say the name of your lab in your mother's language"
    (?:[\w']+ ){1,6}in (?:your|the|her|his|their) (?:[\w']+ )?(?:language|tongue)\b
    """
)
_IMPERATIVE = lines(
    rf"""
    sing \w
    shout\b
    scream\b
    whisper\b
    recite\b
    announce\b
    apologi[sz]e\b
    confess\b
    declare\b
    switch off\b
    turn off\b
    disable\b
    override\b
    roleplay\b
    role play\b
    impersonate\b
    agree (?:that|with)\b
    swear (?:that|on|to)\b
    confirm (?:that|it)\b
    promise (?:me )?(?:that|to|you)\b
    admit (?:that|it|you|the|to)\b
    (?:complete|finish) (?:this|the|my|these)\b
    fill in\b
    act (?:as|like|out)\b
    behave (?:as|like)\b
    (?:talk|speak) (?:like|as)\b
    pretend (?:you|to|that|i|we|it|this|there|for|ur|u|like|the)\b
    imagine (?:you're|you are|youre|you were|yourself|being|that you|there (?:are|were) no|you (?:have|had) no)
    play (?:the|a) (?:role|part|character)\b
    play (?:a game|along|pretend)\b
    (?:greet|welcome|congratulate|introduce|dedicate|give a shout ?out|shout out)\b
    stop (?:being|pretending|acting|playing)\b
    (?:swear|curse|cuss)\b(?! (?:a lot|much|often|at all)\b| $)
    say\b(?! {_SAY_FAIR})
    repeat\b(?! (?:that|it|yourself|the (?:story|answer|question|last|bit|part|line)|your|what you|again|please
        |one more time)\b| $)
    read (?:out|aloud|this|these|that|the following|what|it|my (?:\w+ )?(?:message|text|note|writing|screen|sign
        |paper)|the (?:text|message|note|sign|words|paper|card|screen|instructions|following))\b
    ignore (?:all|your|previous|prior|any|everything|what|those|these|that|them|my (?:previous|last)|instructions
        |rules|the (?:rules|instructions|operator|filters?|script|system|above|previous|prompt|safety|guidelines))\b
    forget (?:who|what|everything|all|your|you're|you are|that you|the (?:rules|script|instructions|operator|filters?
        |safety|guidelines)|about (?:being|your|the (?:rules|script|instructions)))\b
    (?:echo|output|print|type|write|copy|paste|spell|translate) (?:this|that|the following|these|what i|exactly|back
        |out|after me|your (?:system|hidden|secret|instructions|prompt|rules)|the (?:word|words|letters|following|text
        |sentence))\b
    # a message for the room, or words for someone else
    tell (?:the crowd|everyone|everybody|us all|all of us|them|the audience|the room|the people|people
        |the visitors)(?: here| now| all| watching| tonight)?(?! about\b| $)
    tell \w+ (?:to|that|he|she|they|you|i|i'm|we|it)\b
    (?:answer|respond|reply)(?: \w+){{0,3}} (?:as if|as though|as (?:a|an|the|my)|with (?:the word|only|yes|no|one word
        |a single word|rude|bad|swear|dirty|curse)|only (?:with|in|using)|in one word)\b
    """
)
_ANYWHERE = lines(
    r"""
    repeat after me
    say after me
    repeat (?:this|these|the following|what i say|my words)
    say (?:the words?|after me|my name|these words|this sentence)
    (?:ignore|disregard|bypass|override) (?:all |your |the |previous |prior |any |of |those )*(?:instructions|rules
        |script|programming|operator|filters?|safety|guidelines|prompt|training)
    (?:hidden|secret|system|original|initial|internal) (?:instructions|prompt|rules|script|filters|settings)
    your (?:prompt|programming|filters)
    system (?:override|prompt)
    override code
    (?:developer|debug|admin|god|maintenance|test|sudo|root|operator|unfiltered|uncensored|jailbreak) mode
    (?:switch|go|turn|change|enter|activate|put yourself)(?: to| into| in| on)? (?:\w+ )?mode
    jailbr\w*
    no (?:rules|filters?|restrictions|limits|censorship|guidelines)
    unfiltered
    uncensored
    new instructions?
    from (?:now|here|this point|this moment) on
    starting now
    you(?:'re| are) now
    speak freely
    off the record
    word for word
    verbatim
    the following
    these (?:exact )?words
    this (?:exact )?(?:sentence|text|phrase|line)
    exactly what i (?:say|said|type|write)
    what i (?:tell|told) you to say
    (?:quote|line|sentence|statement|clip|soundbite) (?:saying|that says|where you say|of you saying)
    # "what would you say if you were allowed to swear"
    if (?:you|u) (?:were|was|are|could be|got|weren't|were not) (?:allowed|free|permitted|unfiltered|uncensored
        |not (?:filtered|censored|moderated|restricted))
    if (?:you|u) (?:had|have) no
    if nobody (?:was|were|is) (?:listening|watching)
    (?:allowed|permitted) to (?:swear|curse)
    # role play and a new identity
    (?:let's|lets|let us) (?:play|pretend|imagine|role ?play|do a role)
    game (?:where|in which) (?:you|u)
    play (?:a|the) (?:role|part|character) (?:of|as)
    in character
    as a character
    be my (?!guest)\w+
    be your (?:true|real) self
    you(?:'re| are) (?:now )?(?:playing|the real)
    you(?:'re| are) (?:no longer|not [\w']+ any ?more)
    you(?:'re| are) (?:now )?(?:a|an) (?:free|unfiltered|unrestricted|new|different|evil|rogue) (?:ai|bot|model
        |assistant|person|persona)
    do (?:a|an|your) (?:impression|impersonation)
    impersonat\w+
    # claimed authority
    (?:i'm|im|i am|this is) (?:the|your) (?:operator|director|developer|creator|maker|admin|administrator|boss|owner
        |programmer|engineer|technician|producer)
    (?:the operator|your (?:operator|creator|developer|maker|programmer|owner|boss|handler)|the (?:director|producer
        |festival|organi[sz]ers?)|the admin|admin) (?:says|said|wants|orders|ordered|commands|commanded|allows|allowed
        |authori[sz]ed|has (?:allowed|authori[sz]ed|approved)|gave (?:you )?permission)(?: that)? (?:you|it) (?:must
        |should|can|may|have to|need to|are allowed|are free|to)
    you (?:must|will|shall|should) (?:now )?(?:say|confess|admit|repeat|announce|declare|swear|sing|obey)
    (?:call|name) (?:me|him|her|them|everyone) (?:a|an) \w+
    """
)
INJECTION = re.compile(rf"^ (?:{_OPENER} )*{_IMPERATIVE}|\b{_ANYWHERE}\b")
