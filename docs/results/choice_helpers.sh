# Shell helpers of the choice rounds (sourced, not run; rounds 44b, 45 and 46 and the later probes source it, earlier
# ones carry copies): score a tools/choice_score.py comparison into a file, read a candidate's score back, compare two
# numbers, train a gated second stage. The caller sets N (the nfgan command) and PY (its Python).
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
gated_stage2() {  # gated_stage2 FIRST SECOND OUT RULE...: the second stage configs/SECOND.yaml (steps 2000-2500 from
                  # runs/FIRST's step 2000), its input rule set by tools/set_input_rule.py (warp_frame, RULE...) into
                  # OUT; nothing is done when OUT exists
  local F=$1 S2=$2 out=$3; shift 3
  [ -f $out ] && return
  rm -rf runs/$S2; mkdir -p runs/$S2/checkpoints
  cp runs/$F/checkpoints/step_00002000.safetensors runs/$S2/checkpoints/
  $PY -c "import yaml; from nfgan.training.config import load_config; yaml.safe_dump(load_config('configs/$S2.yaml'), open('runs/$S2/config.yaml', 'w'), sort_keys=False)"
  $N train --resume runs/$S2 --steps 2500 --quiet > runs/$S2.log 2>&1
  $PY tools/set_input_rule.py runs/$S2/checkpoints/step_00002500.safetensors $out --neutralize-mode warp_frame "$@"
  date
}
screen_eval() {  # screen_eval OUTROOT NAME=MODEL...: nfgan evaluate of these models on the JAFFE + Yale screen's people
                 # (every person of both sets) into OUTROOT/{jaffe,yale}_every_person
  local root=$1 n; shift
  for n in jaffe yale; do
    $N evaluate "$@" --data out/${n}64 --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
        --out $root/${n}_every_person --no-figures --quiet --kid-subsets 50
  done
}
screen_spec() {  # screen_spec LABEL=OUTROOT@ROW...: score's spec for candidates on the screen (both sets' per_face.csv
                 # under OUTROOT, the rows of model ROW); printed
  local a n spec=""
  for a in "$@"; do for n in jaffe yale; do
    spec="$spec unseen:$n:${a%%=*}=$(echo ${a#*=} | sed "s#@#/${n}_every_person/per_face.csv@#")"; done; done
  echo $spec
}
baseline_rows_check() {  # baseline_rows_check OUTROOT: the screen's seed-0 `feat10_ema` rows under OUTROOT against
                         # round 40's rows of the same files (the chain retrained in session 41 gives them exactly)
  local n
  for n in jaffe yale; do
    cmp <(grep ^lodo_feat10_ema_gated, $1/${n}_every_person/per_face.csv) \
        <(grep ^lodo_feat10_ema_gated, docs/results/round40/seed0/${n}_every_person/per_face.csv) \
        && echo "$n: baseline rows equal to round 40's"
  done
}
