# Shell helpers of the choice rounds (sourced, not run; rounds 44b, 45 and 46 source it, earlier ones carry copies):
# score a tools/choice_score.py comparison into a file, read a candidate's score back, compare two numbers.
score() {  # score OUT SPEC...: the choice_score command and its table, into OUT
  local out=$1; shift
  CMD="python tools/choice_score.py $* --bootstrap 2000"
  (echo "\$ $CMD"; echo; $PY ${CMD#python }) > $out
  tail -2 $out
}
value() {  # value FILE NAME: NAME's number on the file's choice_score line
  $PY -c "
line = [l for l in open('$1') if l.startswith('choice_score')][-1]
print(dict(kv.split('=') for kv in line.split()[1:])['$2'])"
}
higher() {  # higher A B: 1 if A > B
  $PY -c "print(int(float('$1') > float('$2')))"
}
