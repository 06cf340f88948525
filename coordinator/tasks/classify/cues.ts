// Word cues of the local difficulty rules, by intent, in English, French, Spanish, Portuguese, German, Italian,
// Russian, Chinese, Japanese and Korean. They name kinds of request (a verb of asking, a genre), never topics.

const cjkStart = /^[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/;
/** Letters of the scripts written with spaces between words (Latin, Greek, Cyrillic), lowercase, and digits. */
const letter = "a-z0-9_\\u00df-\\u024f\\u0370-\\u03ff\\u0400-\\u04ff\\u1e00-\\u1eff";

/**
 * One regex from cue fragments (regex source, lowercase: it runs on lowercased text). A fragment matches at a
 * word start and, unless it ends in `*`, at a word end; a space matches any run of spaces or hyphens. Chinese,
 * Japanese and Korean fragments match anywhere: those scripts don't separate words (or glue particles to them).
 * The start boundary consumes the character before the word: a lookbehind there made every cue ~20× slower.
 */
export function cue(...fragments: string[]): RegExp {
  const spaced: string[] = [];
  const unspaced: string[] = [];
  for (const fragment of fragments) {
    if (fragment !== fragment.toLowerCase()) throw new Error(`cue fragments must be lowercase: ${fragment}`);
    if (cjkStart.test(fragment)) {
      unspaced.push(fragment);
      continue;
    }
    const prefix = fragment.endsWith("*");
    const body = (prefix ? fragment.slice(0, -1) : fragment).replaceAll(" ", "[\\s\\-]+");
    spaced.push(prefix ? `(?:${body})` : `(?:${body})(?![${letter}])`);
  }
  const parts = [];
  if (spaced.length > 0) parts.push(`(?:^|[^${letter}])(?:${spaced.join("|")})`);
  if (unspaced.length > 0) parts.push(unspaced.join("|"));
  return new RegExp(parts.join("|"));
}

/** Asking for a translation: what follows is material, not instructions. */
export const translate = cue(
  "translat*", "how do you say", "how to say", "how would you say",
  "tradui*", "traduction", "comment dit on", "comment dire",
  "traduc*", "traduz*", "tradução", "c[oó]mo se dice", "como se diz", "traduci*", "come si dice",
  "übersetz*", "wie sagt man", "was heißt",
  "перевед*", "перевод*", "как сказать", "как будет",
  "翻译", "译成", "怎么说", "翻訳", "訳して", "何と言", "何て言", "번역", "어떻게 말",
);

/** Verbs that make something: with a code noun or a programming language they ask for code. */
export const make = cue(
  "write", "implement*", "build", "create", "generate", "develop", "make", "give me", "add",
  "écri*", "écrivez", "implément*", "crée*", "créer", "génère*", "développe*",
  "escrib*", "implement*", "crea", "crear", "genera*", "desarroll*",
  "escrev*", "crie", "criar", "gere", "gerar", "desenvolv*", "scriv*", "svilupp*",
  "schreib*", "implementier*", "erstell*", "generier*", "entwickl*", "programmier*",
  "напиш*", "написать", "реализ*", "созда*", "сгенерир*", "разработа*", "запрограммир*",
  "写", "编写", "实现", "创建", "生成", "开发", "書い", "書け", "実装", "作成", "作って", "生成", "開発", "작성", "구현", "만들",
);

/** "Implement" on its own means building software in everyday requests. */
export const implement = cue("implement", "implementa", "implémente*", "implemente", "implementiere*", "реализуй*", "实现一个", "実装", "구현");

/** Things made of code. */
export const codeNoun = cue(
  "functions?", "algorithms?", "apis?", "endpoints?", "regexp?", "regexes", "regular expressions?",
  "queries", "query", "components?", "parser", "compiler", "cli", "command line tool", "computer program",
  "unit tests?", "test suite", "shell script", "snippet",
  // bare "code" is also a promo, postal or dress code: only code someone has or wants counts
  "(?:this|that|my|the|your|our|following|source|some|write|writing) code", "code (?:snippet|review|that|which|to)", "linked list", "binary tree",
  "hash map", "data structure", "dockerfile", "makefile", "docker compose", "web app", "mobile app",
  "fonction*", "algorithme*", "requête*", "composant*",
  "funci[oó]n*", "algoritmo*", "consulta sql", "componente*", "código*", "função", "funções", "funcao",
  "funktion*", "algorithmus", "abfrage*", "komponente*",
  "funzion*", "codice*",
  "функци*", "алгоритм*", "запрос*", "компонент*", "код", "кода", "коде", "скрипт*",
  "函数", "算法", "代码", "程序", "脚本", "接口", "関数", "メソッド", "アルゴリズム", "コード", "プログラム", "スクリプト",
  "함수", "코드", "프로그램", "알고리즘", "스크립트",
);

/** Programming languages and frameworks whose names mean nothing else. */
export const language = cue(
  "python", "javascript", "typescript", "java", "c\\+\\+", "c#", "golang", "kotlin", "haskell", "php", "sql", "bash",
  "powershell", "node\\.?js", "react", "django", "flask", "fastapi", "express\\.?js", "spring boot", "pytest", "jest",
  "mysql", "postgres(?:ql)?", "sqlite", "html", "css", "dockerfile", "kubernetes", "terraform", "solidity", "swiftui",
  "파이썬", "자바스크립트",
);

/** Asking to repair or change code. */
export const repair = cue(
  "fix", "bugs?", "debug*", "errors?", "exception*", "traceback", "stack trace", "crash*", "fails?", "failing",
  "doesn't work", "does not work", "not working", "refactor*", "optimi[sz]e*", "rewrite", "improve", "make it",
  "corrig*", "corrij*", "erreur*", "ne (?:fonctionne|marche) pas", "débog*", "depur*", "error", "no funciona",
  "optimiz*", "otimiz*", "erro", "não funciona", "fehler*", "korrigier*", "behebe*", "funktioniert nicht",
  "optimier*", "correggi*", "errore", "non funziona", "исправ*", "ошибк*", "баг*", "не работает", "оптимизир*",
  "修复", "错误", "报错", "修改", "优化", "重构", "バグ", "直して", "修正", "エラー", "버그", "오류", "수정",
);

/** Asking what given code means rather than to change it. */
export const explainCode = cue(
  "what does (?:this|the|it|that)*", "explain*", "walk me through", "understand",
  "que fait*", "explique*", "qu[eé] hace*", "explica*", "o que faz*", "was (?:macht|tut)*", "erklär*",
  "cosa fa*", "spiega*", "что делает*", "объясн*", "做什么", "什么意思", "解释", "何をして", "説明", "설명",
);

/** Proof and derivation. */
export const proof = cue(
  "prove", "proof", "derive", "derivation", "theorem", "lemma", "by induction", "q\\.e\\.d",
  "démontr*", "prouve*", "démonstration", "demuestr*", "demostr*", "demonstr*", "prova che", "dimostr*",
  "beweis*", "herleit*", "докаж*", "доказ*", "выведи*", "证明", "推导", "証明", "導出", "증명",
);

/** "Show that" is a proof only about mathematics. */
export const showThat = cue(
  "show that", "let [a-z] be", "montre[rz]? que", "muestra que", "mostre que", "zeig[a-zäöü]*,? dass", "mostra che",
  "покаж[а-яё]*,? что", "说明", "示せ", "보여",
);

/** Words of mathematics, in which "show that" asks for a proof. */
export const mathNoun = cue(
  "primes?", "prime numbers?", "integers?", "irrational", "rational", "divisible", "groups?", "abelian", "matrix",
  "triangle", "polynomial", "continuous", "bounded", "infinitely", "converge*", "derivative", "integral",
  "equations?", "inequality", "premiers?", "entiers?", "irrationnel*", "infinit*", "primos?", "enteros?",
  "irracional*", "divisível", "inteiros?", "primzahl*", "ganze zahl*", "teilbar", "dreieck*", "ungerade*",
  "irrational*", "простых", "простые", "целы*", "иррациональн*", "делится", "треугольник*",
  "质数", "素数", "整数", "无理数", "整除", "三角形", "偶数", "奇数", "無理数", "割り切", "소수", "정수", "무리수",
);

/** Worked answers: the request asks for the steps. */
export const stepByStep = cue(
  "step by step", "show (?:your|the|each|all|every) (?:work|steps?)", "show each step", "explain your reasoning",
  "étape par étape", "pas à pas", "paso a paso", "passo a passo", "passo dopo passo", "schritt für schritt",
  "schrittweise", "по шагам", "пошагов*", "шаг за шагом", "一步一步", "逐步", "分步", "ステップバイステップ",
  "段階的", "順を追", "手順を追", "단계별", "차근차근",
);

/** System and data design. */
export const designVerb = cue(
  "design", "architect", "conçoi*", "concevoir", "diseñ*", "projet[ea]", "desenh[ea]", "entwirf", "entwerf*",
  "konzipier*", "progetta*", "спроектир*", "разработай", "设计", "設計", "설계",
);
export const systemNoun = cue(
  "architecture", "system", "database schema", "database", "backend", "infrastructure", "pipeline",
  "système", "base de données", "arquitectura", "sistema", "base de datos", "arquitetura", "banco de dados",
  "architektur", "datenbank*", "architettura", "архитектур*", "систем*", "баз* данных",
  "架构", "系统", "数据库", "システム", "アーキテクチャ", "データベース", "시스템", "아키텍처",
);

/** A plan made of phases or steps. */
export const planNoun = cue("plan", "roadmap", "план(?:а|е|ом|ы)?", "计划", "方案", "計画", "계획");
export const stepNoun = cue(
  "steps", "phases?", "stages?", "milestones?", "étapes", "pasos", "fases", "etapas", "schritte*", "phasen",
  "шаг*", "этап*", "步骤", "阶段", "ステップ", "段階", "단계",
);

/** The first and a later step of a sequence the request spells out. */
export const sequenceStart = cue(
  "first", "firstly", "start by", "begin by", "d'abord", "premièrement", "primero", "primeiro", "prima", "zuerst",
  "zunächst", "сначала", "во первых", "首先", "まず", "먼저",
);
export const sequenceNext = cue(
  "then", "next", "after that", "afterwards", "finally", "puis", "ensuite", "enfin", "luego", "después", "depois",
  "em seguida", "finalmente", "poi", "infine", "dann", "danach", "anschließend", "schließlich", "затем", "потом",
  "после этого", "наконец", "然后", "接着", "最后", "次に", "それから", "最後に", "그다음", "마지막",
);

/** A question about a quantity: with several numbers, a word problem. */
export const quantityQuestion = cue(
  "how (?:much|many|long|far|fast)", "when", "what time", "combien", "cu[aá]nt[oa]s?", "quant[oa]s?", "wie viele?",
  "wie lange", "wann", "сколько", "когда", "多少", "几", "何個", "何時", "何人", "いくら", "求め", "몇",
);

// ---- COMPLEX ----

export const summarise = cue(
  "summar*", "tl;?dr", "recap", "key points", "main (?:points|ideas|arguments|causes|events)", "outline", "gist",
  "résum*", "synthèse", "points (?:principaux|clés)", "idées principales", "resum*", "sintetiz*",
  "puntos (?:principales|clave)", "ideas principales", "pontos principais", "ideias principais",
  "fass(?:e|t)? [^.?!]{0,80}zusammen", "zusammenfass*", "hauptpunkte", "wichtigsten", "riassum*", "sintetizza*", "punti principali",
  "кратко излож*", "излож*", "резюм*", "перескаж*", "основн[а-яё]* (?:иде|мысл|пункт)*", "выдели*",
  "总结", "概括", "摘要", "归纳", "主要内容", "要約", "まとめ", "概要", "要点", "요약", "정리",
);

export const compare = cue(
  "compar*", "contrast*", "versus", "vs\\.?", "differences?", "differ", "pros and cons", "advantages and disadvantages",
  "trade offs?", "which (?:is|would be|one is) (?:better|best)", "should i (?:choose|pick|use|buy)", "similarities",
  "différences?", "avantages et (?:les )?inconvénients", "diferencias?", "ventajas y desventajas", "pros y contras",
  "diferenças?", "vantagens e desvantagens", "prós e contras", "vergleich*", "unterschied*", "vor und nachteile",
  "confront*", "paragona*", "differenz*", "vantaggi e svantaggi", "сравн*", "различи*", "разниц*", "плюсы и минусы",
  "преимущества и недостатки", "比较", "对比", "区别", "差异", "优缺点", "利弊", "比較", "違い", "メリットとデメリット",
  "長所と短所", "비교", "차이", "장단점",
);

export const analyse = cue(
  "analy[sz]*", "evaluat*", "assess*", "critique", "critici[sz]e", "review", "examine", "interpret*",
  "implications?", "consequences?", "impact", "effects? of", "role of", "lessons?", "learn from", "themes?",
  "symbolism", "strengths and weaknesses", "for and against", "arguments?", "both sides", "feedback",
  "analys*", "évalu*", "critiqu*", "commente*", "interprét*", "conséquences", "enjeux", "rôle",
  "analiz*", "análisis", "evalú*", "valora*", "consecuencias", "impacto", "papel d[eo]", "analis*", "análise",
  "avali*", "consequências", "bewert*", "beurteil*", "untersuch*", "interpretier*", "folgen", "auswirkung*",
  "rolle", "symbolik", "analizz*", "analisi", "valut*", "conseguenze", "impatto", "ruolo",
  "анализ*", "проанализ*", "оцени*", "разбер*", "последстви*", "влияни*", "роль", "роли", "причин*",
  "分析", "评价", "评估", "点评", "影响", "后果", "意义", "評価", "考察", "影響", "意義", "役割", "분석", "평가", "영향",
  "causes", "causas", "ursachen", "原因", "원인",
);

export const explain = cue(
  "explain*", "why", "how (?:do|does|did|can|could|would|should)", "describe*", "tell me about",
  "in what ways?", "what causes", "what happens (?:when|if)", "walk me through", "in detail", "elaborate",
  "expliqu*", "pourquoi", "comment (?:fonctionne|marche)*", "décri*", "en détail", "parle moi de",
  "explica*", "por qu[eé]", "c[oó]mo funciona*", "describ*", "en detalle", "detalladamente", "háblame de",
  "como funciona*", "descrev*", "em detalhes", "fale sobre", "erklär*", "warum", "wieso", "weshalb",
  "wie funktioniert", "beschreib*", "ausführlich", "im detail", "spieg*", "perché", "come funziona",
  "descriv*", "in dettaglio", "объясн*", "почему", "как работает", "как устроен*", "опиш*", "расскаж*", "подробно",
  "解释", "为什么", "为何", "原理", "如何工作", "怎么工作", "是如何", "描述", "详细", "阐述",
  "説明", "なぜ", "どうして", "仕組み", "詳しく", "설명", "왜", "자세히",
);

/** Writing a piece of text: a verb of writing with a genre. */
export const writeVerb = cue(
  "write", "draft", "compose", "écri*", "rédig*", "escrib*", "redact*", "escrev*", "redij*", "redig*", "schreib*",
  "verfass*", "scriv*", "напиш*", "состав*", "写", "撰写", "書い", "書け", "作成", "써", "작성",
);
export const genre = cue(
  "essays?", "articles?", "blog posts?", "letters?", "cover letter", "e?mails?", "reports?", "speech", "proposal",
  "press release", "stories", "story", "lettre*", "article*", "essai*", "dissertation*", "rapport*", "discours",
  "artículo*", "ensayo*", "carta*", "informe*", "texto", "artigo*", "ensaio*", "relatório*", "redação",
  "aufsatz*", "artikel*", "briefe?", "bericht*", "essay*", "saggio", "articolo", "lettera", "tema", "relazione",
  "эссе", "статью", "статья", "письм*", "доклад*", "сочинени*", "отч[её]т*",
  "作文", "文章", "论文", "报告", "演讲稿", "レポート", "論文", "記事", "手紙", "エッセイ", "에세이", "보고서",
);
/** A length in words: a piece of writing. */
export const wordCount = /\d{3,5}\s*-?\s*(?:words?|mots|palabras|palavras|wörter|parole|слов|字|文字|단어)/;

/** A short follow-up asking to change what an earlier turn produced. */
export const followUpEdit = cue(
  "now", "make it", "change", "add", "also", "instead", "rewrite", "convert", "handle", "support", "modify", "update",
  "fais*", "modifie*", "ajoute*", "haz", "modifica*", "añade", "cambia", "mach", "ändere*", "füge*", "faça",
  "modifique", "adicione", "mude", "сделай", "измени*", "добавь", "перепиш*", "改成", "加上", "添加", "変更", "追加",
);
