pkg load image
warning('off', 'all');
addpath('/tmp/ma_octave/external/randomforest-matlab/RF_Reg_C');
addpath('/tmp/ma_octave/external/matlabPyrTools');
addpath('/tmp/ma_octave');
addpath('/tmp/ma_octave/compat');
