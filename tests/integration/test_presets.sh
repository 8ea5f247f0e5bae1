# Every preset trains distributed (2 servers + 2 workers) and its exported
# model predicts what the job computed; columns a preset does not predict
# are empty.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 30000 8000 14
for m in cvr ctr shared-bottom esmm esmm-cvr esmm-ns mmoe ple escm2-ipw escm2-dr; do
  job 2 2 "$data" "$WORK/$m" --model "$m" 2>"$WORK/$m.log" || { cat "$WORK/$m.log"; fail "$m did not train"; }
  "$FUNNEL" predict --run "$WORK/$m" --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" --out "$WORK/$m.csv" 2>/dev/null
  same_preds "$WORK/$m.csv" "$WORK/$m/test_preds.csv"
  row=$(sed -n 2p "$WORK/$m.csv")
  case $m in
    cvr) [[ $row =~ ^[0-9]+,,[0-9.e-]+,$ ]] || fail "$m row '$row' should have only pcvr" ;;
    ctr) [[ $row =~ ^[0-9]+,[0-9.e-]+,,$ ]] || fail "$m row '$row' should have only pctr" ;;
    *) [[ $row =~ ^[0-9]+,[0-9.e-]+,[0-9.e-]+,[0-9.e-]+$ ]] || fail "$m row '$row' should have all columns" ;;
  esac
  note "$m: trained, predict matches, columns as expected"
done
[[ -s $WORK/esmm-ns/model/emb-0.bin ]] || fail "esmm-ns export"
echo "test_presets: ok"
