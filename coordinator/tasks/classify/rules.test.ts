// The local rules: a table of requests in ten languages (none taken from bench/classifier-set.json), then the
// structure they read (last user turn, quoted material, long pastes, code follow-ups) and their cost.
import { describe, expect, it } from "vitest";
import type { Difficulty } from "../../db/schema.ts";
import { classifyLocally, LONG_PROMPT_CHARS, textWeight } from "./rules.ts";

const ask = (content: string) => classifyLocally({ messages: [{ role: "user", content }] });

const table: [string, Difficulty, string][] = [
  // English
  ["en", "SIMPLE", "Translate 'where is the library' into Portuguese."],
  ["en", "SIMPLE", "What is a black hole?"],
  ["en", "SIMPLE", "Is Canberra bigger than Sydney?"],
  ["en", "SIMPLE", "How many legs does a spider have?"],
  ["en", "SIMPLE", "Good evening! How are you?"],
  ["en", "COMPLEX", "Summarise the main ideas of stoicism."],
  ["en", "COMPLEX", "What are the pros and cons of index funds?"],
  ["en", "COMPLEX", "Why do cats purr?"],
  ["en", "COMPLEX", "Write an article about urban gardening for our newsletter."],
  ["en", "ADVANCED", "Write a Kotlin function that deduplicates a list while keeping order."],
  ["en", "ADVANCED", "Prove that the product of two odd integers is odd."],
  ["en", "ADVANCED", "Solve for x: 3x + 7 = 2x - 5, then check the result."],
  ["en", "ADVANCED", "Explain step by step how to compute the determinant of a 3×3 matrix."],
  // French
  ["fr", "SIMPLE", "Traduis « bonne nuit » en allemand."],
  ["fr", "SIMPLE", "Qu'est-ce que la photosynthèse ?"],
  ["fr", "COMPLEX", "Compare le train et l'avion pour un trajet Paris–Marseille."],
  ["fr", "COMPLEX", "Pourquoi les feuilles changent-elles de couleur en automne ?"],
  ["fr", "ADVANCED", "Écris un script Bash qui compresse les fichiers journaux de plus de sept jours."],
  ["fr", "ADVANCED", "Démontre que la somme de deux nombres pairs est paire."],
  // Spanish
  ["es", "SIMPLE", "¿Cómo se dice «manzana» en inglés?"],
  ["es", "SIMPLE", "¿Es Lima la capital de Perú?"],
  ["es", "COMPLEX", "Resume las ideas principales del existencialismo."],
  ["es", "COMPLEX", "Explica por qué sube el nivel del mar."],
  ["es", "ADVANCED", "Escribe una consulta SQL que liste los productos sin ventas en 2024."],
  ["es", "ADVANCED", "Demuestra que la raíz cuadrada de 7 es irracional."],
  // Portuguese
  ["pt", "SIMPLE", "Traduza «bom dia» para o francês."],
  ["pt", "COMPLEX", "Quais são as vantagens e desvantagens do trabalho remoto?"],
  ["pt", "ADVANCED", "Escreva uma função em TypeScript que valide um CPF."],
  ["pt", "ADVANCED", "Resolva passo a passo: quanto rende R$ 1.000 a 1% ao mês em 2 anos?"],
  // German
  ["de", "SIMPLE", "Übersetze „guten Appetit“ ins Spanische."],
  ["de", "SIMPLE", "Was ist ein Vulkan?"],
  ["de", "COMPLEX", "Erkläre, warum der Himmel blau ist."],
  ["de", "COMPLEX", "Vergleiche Solarstrom und Windkraft für ein Einfamilienhaus."],
  ["de", "ADVANCED", "Schreibe eine Funktion in Python, die Duplikate aus einer Liste entfernt."],
  ["de", "ADVANCED", "Beweise, dass es unendlich viele Primzahlen gibt."],
  // Italian
  ["it", "SIMPLE", "Come si dice «arrivederci» in inglese?"],
  ["it", "COMPLEX", "Riassumi la storia dell'Impero romano."],
  ["it", "ADVANCED", "Dimostra che ogni numero primo maggiore di 2 è dispari."],
  // Russian
  ["ru", "SIMPLE", "Переведи на немецкий: «Доброе утро»."],
  ["ru", "SIMPLE", "Что такое фотосинтез?"],
  ["ru", "COMPLEX", "Объясни, почему происходит смена времён года."],
  ["ru", "COMPLEX", "Сравни iPhone и Android."],
  ["ru", "ADVANCED", "Напиши на Java класс для работы с очередью задач."],
  ["ru", "ADVANCED", "Докажи, что корень из 2 иррационален."],
  // Chinese
  ["zh", "SIMPLE", "“早上好”用英语怎么说？"],
  ["zh", "SIMPLE", "什么是黑洞？"],
  ["zh", "COMPLEX", "请比较电动车和燃油车的优缺点。"],
  ["zh", "COMPLEX", "请总结这本书的主要观点。"],
  ["zh", "ADVANCED", "用JavaScript写一个防抖函数。"],
  ["zh", "ADVANCED", "证明：三角形的内角和等于180度。"],
  // Japanese
  ["ja", "SIMPLE", "「さようなら」を英語に翻訳してください。"],
  ["ja", "SIMPLE", "ブラックホールとは何ですか？"],
  ["ja", "COMPLEX", "電気自動車とガソリン車を比較してください。"],
  ["ja", "COMPLEX", "なぜ空は青いのですか？"],
  ["ja", "ADVANCED", "Goでファイルを読み込むプログラムを書いてください。"],
  ["ja", "ADVANCED", "素数が無限に存在することを証明してください。"],
  // Korean
  ["ko", "SIMPLE", "'안녕하세요'를 일본어로 번역해 주세요."],
  ["ko", "COMPLEX", "전기차와 내연기관차를 비교해 주세요."],
  ["ko", "ADVANCED", "소수가 무한히 많다는 것을 증명해 주세요."],
];

describe("classifyLocally: kinds of request across languages", () => {
  it.each(table)("%s %s: %s", (_lang, expected, prompt) => {
    expect(ask(prompt)).toBe(expected);
  });
});

describe("classifyLocally: what it reads", () => {
  it("judges the last user turn; a system prompt sets a persona, not a task", () => {
    const messages = [
      { role: "system", content: "You are a senior engineer who writes and debugs Python code." },
      { role: "user", content: "What's the capital of Norway?" },
    ];
    expect(classifyLocally({ messages })).toBe("SIMPLE");
  });

  it("a short follow-up asking to change code from an earlier turn is ADVANCED", () => {
    const messages = [
      { role: "user", content: "Give me a JavaScript snippet that sums an array." },
      { role: "assistant", content: "```js\nconst sum = (xs) => xs.reduce((a, b) => a + b, 0);\n```" },
      { role: "user", content: "Now make it skip non-numbers." },
    ];
    expect(classifyLocally({ messages })).toBe("ADVANCED");
    expect(classifyLocally({ messages: [...messages.slice(0, 2), { role: "user", content: "Thanks a lot!" }] })).toBe("SIMPLE");
  });

  it("words inside quotes and after a translation's colon are material, not instructions", () => {
    expect(ask("Translate into Spanish: Why do we compare ourselves to others? Explain step by step.")).toBe("SIMPLE");
    expect(ask("What does the title «Prove It All Night» refer to?")).toBe("SIMPLE");
    expect(ask("Translate this paragraph into German and explain the grammar: Ich bin müde.")).toBe("COMPLEX");
    expect(ask("Translate this Python code to Java:\n```python\nprint(sum(range(10)))\n```")).toBe("ADVANCED");
  });

  it("pasted code: explaining it is COMPLEX, fixing or changing it ADVANCED", () => {
    const code = "```python\ndef mean(xs):\n    return sum(xs) / len(xs)\n```";
    expect(ask(`What does this do?\n${code}`)).toBe("COMPLEX");
    expect(ask(`This crashes on an empty list, fix it:\n${code}`)).toBe("ADVANCED");
    expect(ask(`${code}\nAdd type hints.`)).toBe("ADVANCED");
    expect(ask("function f(a) {\n  return a * 2;\n}\nconsole.log(f(3));")).toBe("ADVANCED");
  });

  it("several given quantities and a question about another is a word problem", () => {
    expect(ask("A tank holds 500 litres and leaks 3 litres an hour while a pump adds 8. How long until it is full from 120 litres?")).toBe("ADVANCED");
    expect(ask("What is 12% of 250?")).toBe("SIMPLE");
  });

  it("a request that spells out first and later steps is multi-step", () => {
    expect(ask("First list the EU countries that use the euro, then group them by population, then name the largest in each group.")).toBe("ADVANCED");
    expect(ask("Сначала найди все делители 36, затем посчитай их сумму.")).toBe("ADVANCED");
  });

  it("a long pasted document is COMPLEX unless its instruction asks for code or a proof", () => {
    const paragraph = "The committee met on Monday to review the budget, the hiring plan and the office move. ";
    const document = paragraph.repeat(Math.ceil(LONG_PROMPT_CHARS / paragraph.length) + 5);
    expect(ask(`Please translate this into French:\n\n${document}`)).toBe("COMPLEX");
    expect(ask(`${document}\n\nIs the tone formal?`)).toBe("COMPLEX");
    expect(ask(`Write a Python script that extracts every date from minutes like these:\n\n${document}`)).toBe("ADVANCED");
  });

  it("counts Chinese, Japanese and Korean characters as several Latin ones", () => {
    expect(textWeight("abc")).toBe(3);
    expect(textWeight("日本語")).toBe(9);
    const chinese = "会议讨论了预算、招聘计划和办公室搬迁等问题。".repeat(40); // ~880 characters
    expect(chinese.length).toBeLessThan(LONG_PROMPT_CHARS);
    expect(ask(`${chinese}\n这篇文章的语气正式吗？`)).toBe("COMPLEX");
  });

  it("stays cheap on a huge paste", () => {
    const huge = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(40_000); // ~2.3 MB
    // how fast is npm run bench:classifier's business (long pastes are in its set); here only the answer
    expect(ask(`Is this Latin?\n${huge}`)).toBe("COMPLEX");
  });
});
