"""Prompts of mixed lengths shared by the engine tests."""

PROMPTS = [
    "Ann has 3 apples and buys 5 more. How many apples does Ann have now?",
    "Hi",
    "The answer is 12 because Ben has 4 pens and 8 cards, so he",
    "What is 2 + 2?",
    "Carla bakes 24 cookies and gives away a third of them to her 4 friends. "
    "Each friend then eats 2. How many cookies are left? Let's think step by step.",
    "Solve for x: 3x + 7 = 22.",
    "Dev",
    "If each pen costs $3.50, how much do 6 pens cost?",
    "Hugo runs 5 km a day for 2 weeks.",
    "Gia has 100 marbles",
    "A train travels 60 km in 45 minutes. What is its speed in km per hour?",
    "Jo",
    "Eve reads 30 pages each day. How many days does a 240-page book take?",
    "Ines buys 7 eggs",
    "Farid saves 15% of 2,400 dollars. How much is that?",
    "1 + 1 =",
]
