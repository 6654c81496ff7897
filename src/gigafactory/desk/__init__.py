"""The AI Act desk (Regulation (EU) 2024/1689): training-compute rules, thresholds and clocks, and the risk
classifier for AI systems. Pure: values in, values out; the questionnaire is a versioned data file shipped with the
package. See ``docs/desk.md``; the facts it rests on are cited article by article in :mod:`.law`."""
