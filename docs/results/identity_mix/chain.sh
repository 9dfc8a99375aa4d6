# Commands shared by the identity-mixing round scripts of session 39 on (sourced, not run): one chain's two training
# stages, the export of a five-set model, and the JAFFE + Yale screen's evaluation and score.
N=.venv/bin/nfgan; PY=.venv/bin/python
stage1() {   # $1: first-stage config, also the run's name
    rm -rf runs/$1
    $N train --config configs/$1.yaml --name $1 --quiet > runs/$1.log 2>&1
}
stage2() {   # $1: first-stage run (its step 2000 is the start), $2: second-stage config, $3: run folder
    rm -rf runs/$3; mkdir -p runs/$3/checkpoints
    cp runs/$1/checkpoints/step_00002000.safetensors runs/$3/checkpoints/
    $PY -c "import yaml; from nfgan.training.config import load_config; c = load_config('configs/$2.yaml'); c['name'] = '$3'; yaml.safe_dump(c, open('runs/$3/config.yaml', 'w'), sort_keys=False)"
    $N train --resume runs/$3 --steps 2500 --quiet > runs/$3.log 2>&1
}
export_all_data() {   # $1: second-stage run folder, $2: model file (the default's five-set input rule)
    $PY tools/set_input_rule.py runs/$1/checkpoints/step_00002500.safetensors runs/$2 \
        --neutralize-mode warp_frame --neutralize-threshold 0.013
}
export_screen() {   # $1: leave-JAFFE-and-Yale-out second-stage run folder, $2: model file (its input rule)
    $PY tools/set_input_rule.py runs/$1/checkpoints/step_00002500.safetensors runs/$2 --neutralize-mode warp_frame \
        --neutralize-threshold 0.012 --neutral-shape-map runs/maps/neutral_shape_no_jaffe_yale.safetensors
}
score_screen() {   # $1: result folder, $2: candidate's name (its evaluated model: lodo_$2_gated), $3: its model
                   # file, $4: a suffix of the score table's labels ("" or _gated); baseline feat10_ema (85.2)
    mkdir -p $1
    for n in jaffe yale; do
        $N evaluate lodo_$2_gated=runs/$3 lodo_feat10_ema_gated=runs/feat10_ema_gated_seed0.safetensors --data out/${n}64 \
            --splits docs/results/lodo_jaffe_yale/${n}_every_person.json --split test \
            --out $1/${n}_every_person --no-figures --quiet --kid-subsets 50
    done
    local cmd="" m n
    for m in feat10_ema $2; do for n in jaffe yale; do
        cmd="$cmd unseen:$n:$m$4=$1/${n}_every_person/per_face.csv@lodo_${m}_gated"; done; done
    (echo "\$ python tools/choice_score.py $cmd --bootstrap 2000"; echo; $PY tools/choice_score.py $cmd --bootstrap 2000) \
        > $1/screen_seed0.txt
    tail -2 $1/screen_seed0.txt
}
